"""Database access: one lazily created pool per process, transactions, named SQL.

Connections are pg8000 (the driver the Cloud SQL connector uses in production).
The pool is created on first use in each process because gunicorn forks workers
after import, and a connection must never be shared across a fork. pg8000 itself is
imported on first use too: it costs ~150 ms, which a cold start pays only when a
request actually needs the database.
"""

from __future__ import annotations

import os
import queue
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlparse

from shared.errors import Busy, DatabaseUnavailable, Deadlock
from shared.settings import Settings, get_settings

Row = dict[str, Any]
T = TypeVar("T")


class Connection(Protocol):
    """The part of a pg8000 connection we use (pg8000 ships no type hints)."""

    def execute_simple(self, statement: str) -> Any: ...

    def execute_unnamed(self, statement: str, vals: Any = ..., oids: Any = ..., stream: Any = ...) -> Any: ...

    def prepare_statement(self, statement: str, oids: Any = ...) -> tuple[bytes, Any, Any]: ...

    def _send_message(self, code: bytes, data: bytes) -> None: ...

    def send_QUERY(self, sql: str) -> None: ...

    def handle_messages(self, context: Any) -> None: ...

    _sock: Any  # the buffered socket file
    _client_encoding: str

    @property
    def py_types(self) -> Any: ...

    def close(self) -> None: ...


_SQL_DIR = Path(__file__).parent / "sql"
# The protocol's Int16 and Int32, as pg8000 packs them.
_H_PACK = struct.Struct("!H").pack
_I_PACK = struct.Struct("!i").pack


class IntegrityViolation(Exception):
    """A constraint refused a write; services map it to a domain error by name."""

    def __init__(self, sqlstate: str, constraint: str | None, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.constraint = constraint


class QueryError(Exception):
    """Any other error the database reported for a statement."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


# SQLSTATE classes that mean "the data was refused", not "the database is broken".
_INTEGRITY_STATES = {"23505", "23P01", "23503", "23514", "23502"}
# Connection lost, server shutting down or starting up, too many connections.
_UNAVAILABLE_PREFIXES = ("08", "57P", "53")
# lock_timeout, statement_timeout: the transaction is rolled back whole, so trying
# again later is safe.
_BUSY_STATES = {"55P03", "57014"}
# A deadlock broken or a serialization failure: rolled back whole too, and worth
# running again at once (in_transaction does).
_DEADLOCK_STATES = {"40P01", "40001"}


def _translate(error: Exception) -> Exception:
    import pg8000.exceptions

    if isinstance(error, pg8000.exceptions.DatabaseError) and error.args:
        info = error.args[0] if isinstance(error.args[0], dict) else {}
        state = str(info.get("C", ""))
        message = str(info.get("M", error))
        if state in _INTEGRITY_STATES:
            return IntegrityViolation(state, info.get("n"), message)
        if state.startswith(_UNAVAILABLE_PREFIXES):
            return DatabaseUnavailable(message)
        if state in _BUSY_STATES:
            return Busy(message)
        if state in _DEADLOCK_STATES:
            return Deadlock(message)
        return QueryError(state, message)
    if isinstance(error, pg8000.exceptions.InterfaceError | OSError):
        return DatabaseUnavailable(str(error))
    return error


# -- named SQL -------------------------------------------------------------------------


class Queries:
    """The `-- name: verb_noun` blocks of one file in shared/sql/."""

    def __init__(self, path: Path) -> None:
        self._by_name: dict[str, str] = {}
        name: str | None = None
        lines: list[str] = []
        for line in [*path.read_text().splitlines(), "-- name: <end>"]:
            if line.startswith("-- name:"):
                if name is not None:
                    self._by_name[name] = "\n".join(lines).strip().rstrip(";")
                name, lines = line.removeprefix("-- name:").strip(), []
            else:
                lines.append(line)

    def __getattr__(self, name: str) -> str:
        try:
            return self._by_name[name]
        except KeyError:
            raise AttributeError(name) from None


@cache
def queries(concern: str) -> Queries:
    return Queries(_SQL_DIR / f"{concern}.sql")


@lru_cache(maxsize=512)
def _prepared(sql: str) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]]:
    import pg8000.native

    # pg8000.native turns :name placeholders into $n (skipping literals and casts).
    statement, make_vals = pg8000.native.to_statement(sql)
    return statement, make_vals


class Tx:
    """One transaction; statements take named parameters (`:slot_id`).

    The pooled connection is taken, and BEGIN sent, with the first statement: both
    go in one round trip (see _execute), and a transaction that runs no statement
    costs nothing.
    """

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._conn: Connection | None = None
        self._later: list[_Later] = []

    def all(self, sql: str, **params: Any) -> list[Row]:
        statement, make_vals = _prepared(sql)
        vals = make_vals(params)
        if self._conn is None:
            context = self._open(lambda conn: _execute(conn, statement, vals, begin=True))
        elif self._later:
            context = self._flush_later((statement, vals), commit=False)
        else:
            try:
                context = _execute(self._conn, statement, vals)
            except Exception as error:
                raise _translate(error) from error
        return _rows(context)

    def later(self, sql: str, then: Callable[[list[Row]], None], **params: Any) -> None:
        """Sends a statement with the transaction's next round trip (the next statement or
        COMMIT) and gives its rows to `then` when they arrive.

        For a write whose result is not needed before the transaction ends: it costs no
        round trip of its own. If it fails, the statement it rode with (or the COMMIT)
        raises its error, and the transaction rolls back as ever.
        """
        if self._conn is None:  # BEGIN goes with a statement that is waited for
            then(self.all(sql, **params))
            return
        statement, make_vals = _prepared(sql)
        self._later.append(_Later(statement, make_vals(params), then))

    def _flush_later(self, last: tuple[str, tuple[Any, ...]] | None, commit: bool) -> Any:
        """Runs the waiting statements, then `last` if given, then COMMIT if asked."""
        assert self._conn is not None
        waiting, self._later = self._later, []
        statements = [(item.statement, item.vals) for item in waiting] + ([last] if last else [])
        try:
            contexts = _execute_batch(self._conn, statements, commit=commit)
        except Exception as error:
            raise _translate(error) from error
        for item, context in zip(waiting, contexts, strict=False):
            item.then(_rows(context))
        return contexts[-1] if last else None

    def commit(self) -> None:
        if self._conn is None:
            return
        if self._later:
            self._flush_later(None, commit=True)
            return
        try:
            self._conn.execute_simple("COMMIT")
        except Exception as error:
            raise _translate(error) from error

    def one(self, sql: str, **params: Any) -> Row:
        rows = self.all(sql, **params)
        if len(rows) != 1:
            raise LookupError(f"expected one row, got {len(rows)}")
        return rows[0]

    def first(self, sql: str, **params: Any) -> Row | None:
        rows = self.all(sql, **params)
        return rows[0] if rows else None

    def execute(self, sql: str, **params: Any) -> None:
        self.all(sql, **params)

    def savepoint(self) -> _Savepoint:
        return _Savepoint(self)

    def simple(self, statement: str) -> None:
        """A statement without parameters or rows (SAVEPOINT and the like)."""
        if self._conn is None:
            self._open(lambda conn: conn.execute_simple("BEGIN"))
        elif self._later:  # they come first: a savepoint must not split them from what preceded
            self._flush_later(None, commit=False)
        assert self._conn is not None
        try:
            self._conn.execute_simple(statement)
        except Exception as error:
            raise _translate(error) from error

    def _open(self, first: Callable[[Connection], Any]) -> Any:
        """Takes a pooled connection and runs `first`, which begins the transaction.

        A pooled connection may have died with a restarted server. Nothing of this
        transaction has committed yet, so `first` is safe to retry on a fresh
        connection: only a database that is really down becomes a 503.
        """
        last: Exception | None = None
        for attempt in range(self._pool.size + 1):
            conn = self._pool.acquire()
            try:
                result = first(conn)
            except Exception as error:
                last = _translate(error)
                if not isinstance(last, DatabaseUnavailable):
                    self._conn = conn  # open and failed: transaction() rolls it back
                    raise last from error
                self._pool.release(conn, broken=True)
                if attempt >= 1:
                    time.sleep(0.05)
                continue
            self._conn = conn
            return result
        assert last is not None
        raise last


# Statements prepared per connection; past this many (ad-hoc SQL in tests, say) the
# rest run unnamed rather than piling up prepared statements on the server.
_MAX_PREPARED = 256


def _execute(conn: Connection, statement: str, vals: tuple[Any, ...], begin: bool = False) -> Any:
    """Runs a statement as a named prepared statement of this connection.

    pg8000's unnamed path costs three round trips per statement (parse, describe,
    bind and execute, each waited for); a statement prepared once per connection
    costs one, and PostgreSQL may reuse its plan. plan_cache_mode stays `auto`:
    the first five executions are planned for their values, and a generic plan is
    kept only when its estimated cost is no worse, so the lookups by key (the
    booking) stop paying for planning (about a third of a booking's database CPU)
    while the optional filters (`:x IS NULL OR ...`), whose generic plans look
    costly, keep being planned per execution.

    With `begin`, a prepared BEGIN is bound and executed ahead of the statement,
    before the one Sync: a round trip less per transaction, and as one batch of the
    extended protocol, an error in BEGIN skips the statement, so it can never run
    outside the transaction.
    """
    cache = _statement_cache(conn)
    if statement not in cache and len(cache) >= _MAX_PREPARED:
        if begin:
            conn.execute_simple("BEGIN")
        return conn.execute_unnamed(statement, vals=vals)
    from pg8000.core import SYNC_MSG, Context, _flush, _write

    name, columns, input_funcs = _prepare(conn, statement)
    if begin:
        _send_bind_execute(conn, _prepare(conn, "BEGIN")[0], ())
    _send_bind_execute(conn, name, vals)
    _write(conn._sock, SYNC_MSG)
    _flush(conn._sock)
    context = Context(statement, columns=columns, input_funcs=input_funcs)
    conn.handle_messages(context)
    return context


def _send_bind_execute(conn: Connection, name: bytes, vals: tuple[Any, ...]) -> None:
    """Bind and Execute of a prepared statement, buffered until the caller's Sync.

    pg8000's own send_BIND and send_EXECUTE each add a Flush message, which makes the
    server send every reply (BindComplete, the rows, CommandComplete) in a packet of
    its own, and the client wake up for each: three sends and three wake-ups per
    statement where one does, on both sides, at every statement of every request.
    Without Flush the server answers the whole batch at the Sync, as pgbench's
    extended protocol does.
    """
    from pg8000.converters import make_params
    from pg8000.core import BIND, EXECUTE_MSG, NULL_BYTE, _write

    encoding = conn._client_encoding
    message = bytearray(NULL_BYTE + name + _H_PACK(0))  # unnamed portal; every parameter as text
    params = make_params(conn.py_types, vals)
    message += _H_PACK(len(params))
    for value in params:
        if value is None:
            message += _I_PACK(-1)
        else:
            data = value.encode(encoding)
            message += _I_PACK(len(data))
            message += data
    message += _H_PACK(0)  # every result column as text
    conn._send_message(BIND, bytes(message))
    _write(conn._sock, EXECUTE_MSG)


@dataclass
class _Later:
    statement: str
    vals: tuple[Any, ...]
    then: Callable[[list[Row]], None]


def _rows(context: Any) -> list[Row]:
    if context.rows is None:
        return []
    names = [column["name"] for column in context.columns]
    return [dict(zip(names, row, strict=True)) for row in context.rows]


def _execute_batch(conn: Connection, statements: list[tuple[str, tuple[Any, ...]]], commit: bool) -> list[Any]:
    """Several statements of an open transaction in one round trip, then COMMIT if asked.

    Each statement is its own Bind, Execute and Sync, so its rows and errors stay its
    own; the transaction block is already open, so an error aborts it and the rest
    (COMMIT included, which then rolls back) do nothing. Every response is read
    before the first error is raised, so the connection stays in step.
    """
    from pg8000.core import SYNC_MSG, Context, _flush, _write

    entries = [_prepare(conn, statement) for statement, _ in statements]
    # pg8000 has no public call that sends without waiting for the answer.
    for (_, vals), (name, _, _) in zip(statements, entries, strict=True):
        _send_bind_execute(conn, name, vals)
        _write(conn._sock, SYNC_MSG)
    if commit:
        conn.send_QUERY("COMMIT")
    _flush(conn._sock)
    contexts: list[Any] = []
    first_error: Exception | None = None
    replies = [
        Context(statement, columns=cols, input_funcs=funcs)
        for (statement, _), (_, cols, funcs) in zip(statements, entries, strict=True)
    ]
    if commit:
        replies.append(Context("COMMIT"))
    for context in replies:
        try:
            conn.handle_messages(context)
        except Exception as error:
            if first_error is None:
                first_error = error
            if isinstance(_translate(error), DatabaseUnavailable):
                break  # the connection is gone: there is nothing more to read
        contexts.append(context)
    if first_error is not None:
        raise first_error
    return contexts


def _prepare(conn: Connection, statement: str) -> tuple[bytes, Any, Any]:
    """(name, columns, input functions) of the statement, prepared on this connection on first use."""
    cache = _statement_cache(conn)
    entry = cache.get(statement)
    if entry is None:
        entry = cache[statement] = conn.prepare_statement(statement, ())
    return entry


def _statement_cache(conn: Connection) -> dict[str, tuple[bytes, Any, Any]]:
    cache: dict[str, tuple[bytes, Any, Any]] | None = getattr(conn, "_clinic_prepared", None)
    if cache is None:
        cache = {}
        setattr(conn, "_clinic_prepared", cache)  # noqa: B010 - a plain attribute on pg8000's object
    return cache


class _Savepoint:
    """Lets a statement fail (a race lost on a constraint) without aborting the transaction."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def __enter__(self) -> None:
        self._tx.simple("SAVEPOINT sp")

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        # Translated like any statement: a connection lost here is a 503, not a 500.
        self._tx.simple("RELEASE SAVEPOINT sp" if error is None else "ROLLBACK TO SAVEPOINT sp")


# -- connections -----------------------------------------------------------------------


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
        raise _translate(error) from error
    # pg8000 keeps the connect timeout for every read after it. The server's own timeouts
    # must answer first (a lock wait is then Busy, with the connection still good), so
    # the socket waits out the statement timeout and a margin.
    socket = getattr(conn, "_usock", None)
    if socket is not None:
        socket.settimeout(settings.db_statement_timeout_ms / 1000 + SOCKET_MARGIN_S)
    return conn


_TIMESTAMPTZ_OID = 1184
# A row lock waited for longer than this is Busy (503), not a hang.
LOCK_TIMEOUT_S = 5
SOCKET_MARGIN_S = 5.0


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
        raise _translate(error) from error


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


# A transaction that deadlocked this many times in a row is answered 503.
DEADLOCK_ATTEMPTS = 3


def in_transaction(work: Callable[[Tx], T]) -> T:
    """Runs `work` in a transaction, and runs it again if the database broke a deadlock
    by rolling it back.

    Concurrent writes checked by one exclusion constraint can deadlock each other,
    each waiting for the other's uncommitted row: overlapping windows of one doctor
    published at once, say. (Bookings and moves of one patient take turns and do not:
    book_appointment, take_patients_turn.) PostgreSQL rolls one back; run again, it
    meets the other's committed row, and the caller gets the 409 the rule means, not
    a 503.
    """
    attempt = 1
    while True:
        try:
            with transaction() as tx:
                return work(tx)
        except Deadlock:
            if attempt == DEADLOCK_ATTEMPTS:
                raise
            attempt += 1


@contextmanager
def transaction() -> Iterator[Tx]:
    """A unit of work: commits if the block ends normally, rolls back otherwise."""
    pool = get_pool()
    tx = Tx(pool)
    broken = False
    try:
        yield tx
        tx.commit()
    except BaseException as error:
        if tx._conn is not None:
            try:
                tx._conn.execute_simple("ROLLBACK")
            except Exception:
                broken = True
        broken = broken or isinstance(error, DatabaseUnavailable)
        raise
    finally:
        if tx._conn is not None:
            pool.release(tx._conn, broken=broken)
