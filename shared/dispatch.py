"""Sending outbox rows to Cloud Tasks and Pub/Sub after the change committed."""

from __future__ import annotations


def after_commit(outbox_ids: list[int]) -> None:
    """Dispatches these rows now; whatever fails stays for the sweep."""
    # Filled in by the notifications work (issue 5); until then the rows wait in the outbox.
    return None
