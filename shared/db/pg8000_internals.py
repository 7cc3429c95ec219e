"""Every use of pg8000's private API, in one place: round trips saved per statement.

pg8000's public calls wait for the server after each protocol message (parse,
describe, bind, execute: three round trips for an unnamed statement) and add a Flush
after every message. On Cloud SQL a round trip costs real latency, so this module:

- prepares each statement once per connection and reuses it (one round trip, and
  PostgreSQL may keep its plan);
- sends Bind and Execute without Flush and one Sync per batch, so the server answers
  the whole batch in one packet;
- pipelines BEGIN with a transaction's first statement, and a last statement with
  COMMIT.

It reaches into `pg8000.core` (`_write`, `_flush`, `Context`, message constants) and
the connection (`_send_message`, `_sock`, `_client_encoding`, `handle_messages`,
`send_QUERY`): an upgrade can change any of them, so tests/unit/test_pg8000_internals.py
fails on a pg8000 version not in CHECKED_VERSIONS until these are checked again.
"""

from __future__ import annotations

import struct
from typing import Any

# The pg8000 releases these internals were read and tested against.
CHECKED_VERSIONS = ("1.31.6",)

Row = dict[str, Any]
Statement = tuple[str, tuple[Any, ...]]  # pg8000's $n statement and its values

# The protocol's Int16 and Int32, as pg8000 packs them.
_H_PACK = struct.Struct("!H").pack
_I_PACK = struct.Struct("!i").pack
# Statements prepared per connection; past this many (ad-hoc SQL in tests, say) the
# rest run unnamed rather than piling up prepared statements on the server.
MAX_PREPARED = 256


def execute(conn: Any, statement: str, vals: tuple[Any, ...], begin: bool = False) -> list[Row]:
    """Runs a statement as a named prepared statement of this connection; its rows.

    plan_cache_mode stays `auto`: the first five executions are planned for their
    values, and a generic plan is kept only when its estimated cost is no worse, so
    lookups by key (the booking) stop paying for planning while optional filters
    (`:x IS NULL OR ...`) keep being planned per execution.

    With `begin`, a prepared BEGIN is bound and executed ahead of the statement,
    before the one Sync: a round trip less per transaction, and as one batch, an
    error in BEGIN skips the statement, so it can never run outside the transaction.
    """
    cache = _statement_cache(conn)
    if statement not in cache and len(cache) >= MAX_PREPARED:
        if begin:
            conn.execute_simple("BEGIN")
        return rows(conn.execute_unnamed(statement, vals=vals))
    from pg8000.core import SYNC_MSG, Context, _flush, _write

    name, columns, input_funcs = _prepare(conn, statement)
    if begin:
        _send_bind_execute(conn, _prepare(conn, "BEGIN")[0], ())
    _send_bind_execute(conn, name, vals)
    _write(conn._sock, SYNC_MSG)
    _flush(conn._sock)
    context = Context(statement, columns=columns, input_funcs=input_funcs)
    conn.handle_messages(context)
    return rows(context)


def execute_then_commit(conn: Any, statement: str, vals: tuple[Any, ...]) -> list[Row]:
    """Runs a statement of the open transaction and COMMIT in one round trip; its rows.

    The statement is its own Bind, Execute and Sync, so its rows and errors stay its
    own; an error aborts the transaction block and the COMMIT then rolls back. Both
    replies are read before the first error is raised, so the connection stays in step.
    """
    from pg8000.core import SYNC_MSG, Context, _flush, _write

    name, columns, input_funcs = _prepare(conn, statement)
    _send_bind_execute(conn, name, vals)
    _write(conn._sock, SYNC_MSG)
    conn.send_QUERY("COMMIT")
    _flush(conn._sock)
    replies = [Context(statement, columns=columns, input_funcs=input_funcs), Context("COMMIT")]
    first_error: Exception | None = None
    for context in replies:
        try:
            conn.handle_messages(context)
        except Exception as error:
            first_error = first_error or error
            if _connection_lost(error):
                break  # there is nothing more to read
    if first_error is not None:
        raise first_error
    return rows(replies[0])


def rows(context: Any) -> list[Row]:
    """A pg8000 result context as a list of dicts by column name."""
    if context.rows is None:
        return []
    names = [column["name"] for column in context.columns]
    return [dict(zip(names, row, strict=True)) for row in context.rows]


def prepared_count(conn: Any) -> int:
    """How many statements this connection has prepared (for tests)."""
    return len(_statement_cache(conn))


def _connection_lost(error: Exception) -> bool:
    from shared.db.errors import translate
    from shared.errors import DatabaseUnavailable

    return isinstance(translate(error), DatabaseUnavailable)


def _send_bind_execute(conn: Any, name: bytes, vals: tuple[Any, ...]) -> None:
    """Bind and Execute of a prepared statement, buffered until the caller's Sync.

    pg8000's own send_BIND and send_EXECUTE each add a Flush, which makes the server
    send every reply in a packet of its own and the client wake up for each.
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


def _prepare(conn: Any, statement: str) -> tuple[bytes, Any, Any]:
    """(name, columns, input functions) of the statement, prepared on this connection on first use."""
    cache = _statement_cache(conn)
    entry = cache.get(statement)
    if entry is None:
        entry = cache[statement] = conn.prepare_statement(statement, ())
    return entry


def _statement_cache(conn: Any) -> dict[str, tuple[bytes, Any, Any]]:
    cache: dict[str, tuple[bytes, Any, Any]] | None = getattr(conn, "_clinic_prepared", None)
    if cache is None:
        cache = {}
        setattr(conn, "_clinic_prepared", cache)  # noqa: B010 - a plain attribute on pg8000's object
    return cache
