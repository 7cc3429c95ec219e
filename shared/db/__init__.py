"""PostgreSQL access, one concern per module.

- connection.py: connections (DATABASE_URL or the Cloud SQL connector) and the pool
- pg8000_internals.py: the round-trip savings that reach into pg8000's private API
- sqlfiles.py: the named statements of shared/sql/*.sql
- errors.py: driver errors translated to what services and the web layer understand

The transaction itself is shared/unit_of_work.py.
"""
