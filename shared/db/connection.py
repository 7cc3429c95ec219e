"""Connections and the pool: one lazily created pool per process.

A connection is pg8000 (the driver the Cloud SQL connector uses in production), from
DATABASE_URL or else the Cloud SQL connector with IAM auth. The pool is created on
first use in each process, as a connection must never be shared across a fork, and
pg8000 is imported on first use too: it costs ~150 ms, which a cold start pays only
when a request needs the database.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from shared.db.errors import translate
from shared.errors import DatabaseUnavailable
from shared.settings import Settings, get_settings


class Connection(Protocol):
    """The public part of a pg8000 connection we use (pg8000 ships no type hints)."""

    def execute_simple(self, statement: str) -> Any: ...

    def execute_unnamed(self, statement: str, vals: Any = ..., oids: Any = ..., stream: Any = ...) -> Any: ...

    def prepare_statement(self, statement: str, oids: Any = ...) -> tuple[bytes, Any, Any]: ...

    def close(self) -> None: ...


_TIMESTAMPTZ_OID = 1184
# A row lock waited for longer than this is Busy (503), not a hang.
LOCK_TIMEOUT_S = 5
SOCKET_MARGIN_S = 5.0


def connect(settings: Settings | None = None) -> Connection:
    """A new connection: DATABASE_URL when set, else the Cloud SQL connector (IAM auth)."""
    settings = settings or get_settings()
    if settings.database_url:
        conn = _connect_url(settings.database_url, settings.db_connect_timeout)
    elif settings.instance_connection_name:
        conn = _connect_cloud_sql(settings)
    else:
        raise DatabaseUnavailable("set DATABASE_URL or INSTANCE_CONNECTION_NAME")
    # (getattr: tests stand a fake in for the Cloud SQL connector's connection.)
    register = getattr(conn, "register_in_adapter", None)
    if register is not None:
        register(_TIMESTAMPTZ_OID, _timestamptz_in)
    try:
        conn.execute_simple(
            f"SET statement_timeout = {int(settings.db_statement_timeout_ms)};"
            f" SET lock_timeout = '{LOCK_TIMEOUT_S}s'; SET TIME ZONE 'UTC'"
        )
    except Exception as error:
        raise translate(error) from error
    # pg8000 keeps the connect timeout for every read after it. The server's own timeouts
    # must answer first (a lock wait is then Busy, with the connection still good), so
    # the socket waits out the statement timeout and a margin.
    socket = getattr(conn, "_usock", None)
    if socket is not None:
        socket.settimeout(settings.db_statement_timeout_ms / 1000 + SOCKET_MARGIN_S)
    return conn


def _timestamptz_in(text: str) -> Any:
    """timestamptz as PostgreSQL sends it (ISO, UTC here): fromisoformat, ~60x pg8000's strptime.

    A booking reads five timestamps; strptime cost it about 40 us of CPU. What
    fromisoformat does not take (infinity, BC, year 10000) goes to pg8000's parser.
    """
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        from pg8000.converters import timestamptz_in

        return timestamptz_in(text)


def _connect_url(url: str, timeout: float) -> Connection:
    import pg8000.dbapi

    parts = urlparse(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("DATABASE_URL must be postgresql://user:password@host:port/db")
    try:
        conn: Connection = pg8000.dbapi.Connection(
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password) if parts.password else None,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            database=(parts.path or "/postgres").lstrip("/") or "postgres",
            timeout=timeout,
            application_name=os.environ.get("K_SERVICE", "clinic"),
        )
        return conn
    except Exception as error:
        raise translate(error) from error


_connector_lock = threading.Lock()
_connector: Any = None
# The connector's own waits are unbounded (its TCP connect and TLS handshake take no
# timeout; a blackholed address costs the OS's two minutes), so each connect runs here
# and is waited for DB_CONNECT_TIMEOUT. A few threads: more connects stuck at once only
# queue, and are answered 503 as soon.
_connects: ThreadPoolExecutor | None = None


def _connect_cloud_sql(settings: Settings) -> Connection:
    # Imported here: the connector is heavy and local runs never need it.
    from google.cloud.sql.connector import Connector, IPTypes

    global _connector, _connects
    with _connector_lock:
        if _connector is None:
            # Lazy refresh: Cloud Functions throttle CPU between requests, so a
            # background refresh of the certificate would stall.
            _connector = Connector(refresh_strategy="lazy")
            _connects = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cloud-sql-connect")
    if not settings.db_user:
        raise DatabaseUnavailable("DB_USER must be set with INSTANCE_CONNECTION_NAME")
    assert _connects is not None
    attempt = _connects.submit(
        _connector.connect,
        settings.instance_connection_name,
        "pg8000",
        user=settings.db_user,
        db=settings.db_name,
        enable_iam_auth=True,
        ip_type=IPTypes[settings.db_ip_type.upper()],
        timeout=settings.db_connect_timeout,
    )
    try:
        conn: Connection = attempt.result(timeout=settings.db_connect_timeout)
    except FutureTimeout:
        # Past this the gateway would answer 504 for us; a 503 says when to come back.
        if not attempt.cancel():
            attempt.add_done_callback(_close_late)
        raise DatabaseUnavailable(f"Cloud SQL did not answer within {settings.db_connect_timeout:g} s") from None
    except Exception as error:
        raise DatabaseUnavailable(f"Cloud SQL connection failed: {error}") from error
    return conn


def _close_late(attempt: Future[Connection]) -> None:
    """A connection that arrived after its caller gave up is closed, not leaked."""
    if not attempt.cancelled() and attempt.exception() is None:
        with suppress(Exception):
            attempt.result().close()


class Pool:
    """A small thread-safe LIFO pool; broken connections are dropped, not returned."""

    def __init__(self, factory: Callable[[], Connection], size: int) -> None:
        self._factory = factory
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self.size = size

    def acquire(self, timeout: float = 10.0) -> Connection:
        if not self._slots.acquire(timeout=timeout):
            raise DatabaseUnavailable("no database connection free in time")
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        try:
            return self._factory()
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: Connection, broken: bool = False) -> None:
        if broken:
            _close_quietly(conn)
        else:
            self._idle.put(conn)
        self._slots.release()

    def close(self) -> None:
        while True:
            try:
                _close_quietly(self._idle.get_nowait())
            except queue.Empty:
                return


def _close_quietly(conn: Connection) -> None:
    # The connection may already be gone; there is nothing to save.
    with suppress(Exception):
        conn.close()


_pool: Pool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def get_pool() -> Pool:
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        with _pool_lock:
            if _pool is None or _pool_pid != os.getpid():
                settings = get_settings()
                _pool = Pool(lambda: connect(settings), settings.db_pool_size)
                _pool_pid = os.getpid()
    return _pool


def reset_pool() -> None:
    """Forget the pool (tests point the process at another database)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
        _pool = None
