"""shared/db/pg8000_internals.py: the private pg8000 API it uses is still there, in the
version it was checked against. The wire behaviour itself (one reply per round trip,
BEGIN and COMMIT pipelined) is proven on a real server in tests/integration/test_faults.py."""

from __future__ import annotations

from typing import Any

import pg8000
import pg8000.core
import pg8000.dbapi

from shared.db import pg8000_internals as wire


def test_the_installed_pg8000_is_a_version_the_internals_were_checked_against() -> None:
    assert pg8000.__version__ in wire.CHECKED_VERSIONS, (
        f"pg8000 {pg8000.__version__} is installed; shared/db/pg8000_internals.py was checked against"
        f" {', '.join(wire.CHECKED_VERSIONS)}. Read its uses of pg8000.core and the connection's private"
        " methods against the new version, run tests/integration/test_faults.py, then add it to CHECKED_VERSIONS."
    )


def test_the_private_names_it_uses_exist() -> None:
    for name in ("_write", "_flush", "Context", "SYNC_MSG", "BIND", "EXECUTE_MSG", "NULL_BYTE"):
        assert hasattr(pg8000.core, name), name
    for method in ("_send_message", "send_QUERY", "handle_messages", "prepare_statement", "execute_unnamed"):
        assert callable(getattr(pg8000.dbapi.Connection, method, None)), method


class _Socket:
    def __init__(self) -> None:
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data

    def flush(self) -> None:
        pass


class _Conn:
    """The private attributes the module reads, without a server: enough to see what it sends."""

    _client_encoding = "utf8"

    def __init__(self) -> None:
        self._sock = _Socket()
        self.prepared: list[str] = []
        self.py_types: dict[type, Any] = {}  # every value these tests send is None

    def prepare_statement(self, statement: str, oids: Any) -> tuple[bytes, Any, Any]:
        self.prepared.append(statement)
        return f"s{len(self.prepared)}".encode() + b"\x00", None, None

    def _send_message(self, code: bytes, data: bytes) -> None:
        pg8000.core._write(self._sock, code + (len(data) + 4).to_bytes(4, "big") + data)

    def handle_messages(self, context: Any) -> None:
        context.rows = None


def _types(stream: bytes) -> str:
    types, at = [], 0
    while at < len(stream):
        types.append(chr(stream[at]))
        at += 1 + int.from_bytes(stream[at + 1 : at + 5], "big")
    return "".join(types)


def test_begin_and_a_statement_go_as_one_batch_with_one_sync_and_no_flush() -> None:
    conn = _Conn()
    wire.execute(conn, "SELECT $1", (None,), begin=True)
    assert _types(bytes(conn._sock.sent)) == "BEBES"
    assert conn.prepared == ["SELECT $1", "BEGIN"]


def test_a_statement_is_prepared_once_per_connection() -> None:
    conn = _Conn()
    for _ in range(3):
        wire.execute(conn, "SELECT 1", ())
    assert conn.prepared == ["SELECT 1"]
    assert wire.prepared_count(conn) == 1
