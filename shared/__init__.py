"""Code shared by every Cloud Function: settings, database access, models, rules."""
