"""The migration runner: applies db/migrations/NNNN_name.sql in order, once each.

A file that builds indexes CONCURRENTLY cannot run inside a transaction, so it is
applied statement by statement in autocommit (its statements use IF NOT EXISTS so
a re-run after a failure is safe). A concurrent build that fails (a lock timeout,
a duplicate under a unique index) leaves an INVALID index behind, which IF NOT
EXISTS would then skip for good: the runner drops such an index before building
it again, and records the file only once every index it builds is valid. Every
other file runs in one transaction with its bookkeeping row. An advisory lock keeps
two runners from racing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from local.paths import MIGRATIONS
from shared.db.connection import Connection, connect
from shared.settings import Settings

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_CONCURRENT_INDEX = re.compile(
    r"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+([a-z_][a-z0-9_]*)\s", re.IGNORECASE
)
_INDEX_VALID = """
SELECT i.indisvalid
FROM pg_index AS i
JOIN pg_class AS c ON c.oid = i.indexrelid
WHERE c.relname = :name AND c.relnamespace = CAST('public' AS regnamespace)
"""
_LOCK_KEY = 72_500_001  # any constant, the same for every runner

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def concurrent(self) -> bool:
        return bool(re.search(r"\bCONCURRENTLY\b", _strip_comments(self.sql), re.IGNORECASE))


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def _statements(sql: str) -> list[str]:
    # The concurrent files hold plain statements: no functions, no quoted semicolons.
    return [s.strip() for s in _strip_comments(sql).split(";") if s.strip()]


def discover(folder: Path = MIGRATIONS) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file names look like 0001_name.sql: {path.name}")
        found.append(Migration(match.group(1), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migrations share a version number")
    return found


def _scalar(conn: Connection, sql: str, **params: object) -> list[list[object]]:
    import pg8000.native

    statement, make_vals = pg8000.native.to_statement(sql)
    context = conn.execute_unnamed(statement, vals=make_vals(params))
    return context.rows or []


def migrate(settings: Settings | None = None, folder: Path = MIGRATIONS) -> list[str]:
    """Applies what is pending; returns the file names applied now."""
    conn = connect(settings)
    # connect() makes the socket give up shortly after the API's statement timeout. A
    # migration that sets a longer one (an index build over a large table: minutes)
    # must run to it; the build step's own timeout bounds the rest.
    sock = getattr(conn, "_usock", None)
    if sock is not None:
        sock.settimeout(None)
    applied_now: list[str] = []
    try:
        conn.execute_simple(_BOOKKEEPING)
        _scalar(conn, "SELECT pg_advisory_lock(:key)", key=_LOCK_KEY)
        done = {str(r[0]): str(r[1]) for r in _scalar(conn, "SELECT version, checksum FROM schema_migrations")}
        for migration in discover(folder):
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise RuntimeError(f"{migration.path.name} changed after it was applied")
                continue
            if migration.concurrent:
                for statement in _statements(migration.sql):
                    _run_concurrent(conn, statement)
                _record(conn, migration)
            else:
                conn.execute_simple("BEGIN")
                try:
                    conn.execute_simple(migration.sql)
                    _record(conn, migration)
                    conn.execute_simple("COMMIT")
                except BaseException:
                    conn.execute_simple("ROLLBACK")
                    raise
            applied_now.append(migration.path.name)
        _scalar(conn, "SELECT pg_advisory_unlock(:key)", key=_LOCK_KEY)
    finally:
        conn.close()
    return applied_now


def _run_concurrent(conn: Connection, statement: str) -> None:
    """One statement of a concurrent file; an index it builds must end up valid."""
    match = _CONCURRENT_INDEX.match(statement)
    if match is None:
        conn.execute_simple(statement)
        return
    name = match.group(1).lower()
    if _scalar(conn, _INDEX_VALID, name=name) == [[False]]:  # left by a build that failed
        conn.execute_simple(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
    conn.execute_simple(statement)
    if _scalar(conn, _INDEX_VALID, name=name) != [[True]]:
        raise RuntimeError(f"index {name} is not valid after it was built")


def _record(conn: Connection, migration: Migration) -> None:
    _scalar(
        conn,
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (:version, :name, :checksum)",
        version=migration.version,
        name=migration.path.name,
        checksum=migration.checksum,
    )
