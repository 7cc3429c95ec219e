"""The local gateway's own HTTP/1.1 server, over real sockets, in front of a real backend.

The backend is a plain http.server that echoes what reached it, so each test sees
exactly what the gateway forwarded (or that it forwarded nothing).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from uuid import uuid4

import pytest

from local import gateway as gateway_module
from local import keys
from local.gateway import USERINFO, Gateway, render, serve
from local.paths import OPENAPI

SUB = uuid4()


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict[str, Any]]] = []

    def _echo(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": body.decode()}
        Echo.seen.append(seen)
        reply = json.dumps(seen).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PATCH = _echo

    def do_HEAD(self) -> None:
        reply = json.dumps({"method": "GET", "path": self.path}).encode()
        Echo.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers.items())})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    Echo.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def gateway(backend: str, tmp_path: Path) -> Iterator[int]:
    """The gateway serving on a port of its own, in a thread with its own event loop."""
    jwks = keys.ensure_keys(tmp_path)
    values = {"slots_url": backend, "book_url": backend, "cancel_url": backend}
    values |= {"jwt_issuer": keys.ISSUER, "jwks_uri": jwks.as_uri(), "jwt_audience": keys.AUDIENCE}
    app = Gateway(render(OPENAPI.read_text(), values), jwks)
    port = _free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    serving: list[asyncio.Task[None]] = []

    async def run() -> None:
        started = asyncio.Event()
        serving.append(asyncio.create_task(serve(app, "127.0.0.1", port, started)))
        await started.wait()
        ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await serving[0]

    thread = threading.Thread(target=lambda: loop.run_until_complete(run()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield port
    loop.call_soon_threadsafe(serving[0].cancel)
    thread.join(10)
    loop.close()


def bearer(tmp_path: Path) -> str:
    return "Bearer " + keys.make_token("patient", SUB, "p@example.com", "P", state=tmp_path)


def raw(port: int, data: bytes) -> bytes:
    """Sends bytes as they are; the first response, whole (by Content-Length, or until closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = conn.recv(65536)
            if not chunk:
                return received
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
            None,
        )
        while length is None or len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
    return head + b"\r\n\r\n" + body


def closed_after(port: int, data: bytes) -> bool:
    """Whether the gateway closes the connection after answering these bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(data)
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except TimeoutError:
            return False
    return True


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def problem_of(response: bytes) -> dict[str, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    problem: dict[str, Any] = json.loads(body)
    return problem


def test_one_connection_carries_many_requests_with_the_verified_identity(gateway: int, tmp_path: Path) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway, timeout=10)
    token = bearer(tmp_path)
    for n in range(3):
        conn.request("GET", f"/appointments?page={n}", headers={"Authorization": token})
        response = conn.getresponse()
        seen = json.loads(response.read())
        assert response.status == 200
        assert seen["path"] == f"/appointments?page={n}"
        claims = json.loads(base64.urlsafe_b64decode(seen["headers"][USERINFO] + "=="))
        assert claims["sub"] == str(SUB)
        assert seen["headers"]["X-Forwarded-Authorization"] == token
    assert conn.sock is not None  # never closed in between: keep-alive
    conn.close()


def test_a_chunked_body_is_forwarded_whole(gateway: int, tmp_path: Path) -> None:
    body = b'{"slot_id": "' + str(uuid4()).encode() + b'"}'
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])) + b"0\r\n\r\n"
    response = raw(
        gateway,
        b"POST /appointments HTTP/1.1\r\nHost: x\r\nAuthorization: " + bearer(tmp_path).encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks,
    )
    assert status_of(response) == 201
    assert Echo.seen[0]["body"] == body.decode()
    assert Echo.seen[0]["headers"]["Content-Length"] == str(len(body))
    assert "Transfer-Encoding" not in Echo.seen[0]["headers"]


def test_expect_100_continue_is_answered(gateway: int, tmp_path: Path) -> None:
    """curl sends `Expect: 100-continue` with bodies over 1 KiB and waits a second without it."""
    body = b'{"reason": "' + b"r" * 2000 + b'"}'
    with socket.create_connection(("127.0.0.1", gateway), timeout=10) as conn:
        conn.sendall(
            b"POST /appointments HTTP/1.1\r\nHost: x\r\nAuthorization: " + bearer(tmp_path).encode() + b"\r\n"
            b"Content-Type: application/json\r\nExpect: 100-continue\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        assert conn.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.sendall(body)
        assert status_of(conn.recv(65536)) == 201
    assert Echo.seen[0]["body"] == body.decode()


def test_connection_close_and_http_1_0_end_the_connection(gateway: int) -> None:
    for request in (
        b"GET /doctors HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /doctors HTTP/1.0\r\n\r\n",
    ):
        response = raw(gateway, request)
        assert status_of(response) == 200
        assert b"connection: close" in response.lower()
        assert closed_after(gateway, request)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /doctors?q=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /doctors?q=" + b"a" * 5_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /doctors HTTP/1.1\r\n" + b"X-Big: " + b"b" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /doctors HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"h" * 900) for i in range(80)) + b"\r\n", 431),
        (b"GET /doctors HTTP/1.1\r\nX-Evil: a\n" + USERINFO.encode() + b": forged\r\n\r\n", 400),
        (b"GET /doctors\x00 HTTP/1.1\r\n\r\n", 400),
        (b"GET /doctors HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST /appointments HTTP/1.1\r\nContent-Length: nope\r\n\r\n", 400),
        (b"POST /appointments HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (b"POST /appointments HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST /appointments HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{} ", 400),
        (b"POST /appointments HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST /appointments HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}", 400),
        (b"POST /appointments HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n{}", 400),
        (b"POST /appointments HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n{}", 400),
        (b"POST /appointments HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n{}\r\n0\r\n\r\n", 400),
        (b"POST /appointments HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n+2\r\n{}\r\n0\r\n\r\n", 400),
        (b"POST /appointments HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n", 400),
        (b"POST /appointments HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0_2\r\n{}\r\n0\r\n\r\n", 400),
        (b"POST /appointments HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n 2\r\n{}\r\n0\r\n\r\n", 400),
        (b"DELETE /doctors HTTP/1.1\r\n\r\n", 405),
        (b"GET /tasks/sweep HTTP/1.1\r\n\r\n", 404),
        (b"GET /appointments HTTP/1.1\r\n\r\n", 401),
        (b"GET /doctors HTTP/1.1\r\nX-F@o: 1\r\n\r\n", 400),
        (b"GET /doctors HTTP/1.1\r\nX-Caf\xc3\xa9: 1\r\n\r\n", 400),
        (b"GET /doctors HTTP/1.1\r\nX-Tab\t: 1\r\n\r\n", 400),
    ],
    ids=[
        "request line over 64 KiB",
        "url over 4000",
        "one header over 64 KiB",
        "head over 64 KiB",
        "bare LF in a header",
        "NUL in the request line",
        "header without a colon",
        "not a request line",
        "bad Content-Length",
        "body over 32 MiB",
        "bad chunk size",
        "two Content-Lengths that disagree",
        "Content-Length with Transfer-Encoding",
        "Content-Length with a sign",
        "Content-Length with an underscore",
        "a transfer coding other than chunked",
        "a negative chunk size",
        "a chunk size with a sign",
        "a chunk size with 0x",
        "a chunk size with an underscore",
        "a chunk size after a space",
        "no such method",
        "no such route",
        "no token",
        "a header name with @",
        "a header name with a non-ASCII byte",
        "a header name with a tab",
    ],
)
def test_bad_requests_are_problems_and_reach_no_backend(gateway: int, request_bytes: bytes, status: int) -> None:
    response = raw(gateway, request_bytes)
    assert status_of(response) == status
    assert problem_of(response)["status"] == status
    assert Echo.seen == []


def test_a_query_is_forwarded_with_what_it_may_not_hold_raw_percent_encoded(gateway: int) -> None:
    response = raw(
        gateway, b"GET /doctors?specialty=caf\xc3\xa9&a=\tb+c&d=%41%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status_of(response) == 200
    [seen] = Echo.seen
    assert seen["path"] == "/doctors?specialty=caf%C3%A9&a=%09b+c&d=%41%zz"


def test_a_body_shorter_than_its_length_is_a_408_not_a_hang(gateway: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway_module, "CLIENT_IDLE_S", 0.5)
    head = b"POST /appointments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    response = raw(gateway, head + b"{")
    assert status_of(response) == 408
    assert problem_of(response)["detail"] == "the request body did not arrive within 0.5 s"
    assert problem_of(response)["type"] == "/problems/request-timeout"
    assert b"connection: close" in response.lower()
    assert Echo.seen == []


def test_a_backend_that_is_down_is_a_503_with_retry_after(tmp_path: Path) -> None:
    jwks = keys.ensure_keys(tmp_path)
    down = f"http://127.0.0.1:{_free_port()}"
    values = {"slots_url": down, "book_url": down, "cancel_url": down}
    values |= {"jwt_issuer": keys.ISSUER, "jwks_uri": jwks.as_uri(), "jwt_audience": keys.AUDIENCE}
    app = Gateway(render(OPENAPI.read_text(), values), jwks)
    from local.gateway import Request

    reply = asyncio.run(app.handle(Request("GET", "/doctors", [])))
    assert reply.status == 503
    assert ("Retry-After", "2") in reply.headers
    assert json.loads(reply.data)["status"] == 503


def test_head_is_forwarded_and_its_reply_has_no_body_and_the_connection_goes_on(gateway: int) -> None:
    with socket.create_connection(("127.0.0.1", gateway), timeout=10) as conn:
        conn.sendall(
            b"HEAD /doctors HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /doctors HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    first, _, rest = received.partition(b"\r\n\r\n")
    assert status_of(first) == 200
    # The backend's length (of the content GET would have), not the 0 bytes that came.
    length = len(json.dumps({"method": "GET", "path": "/doctors"}))
    assert f"content-length: {length}\r\n".encode() in first.lower() + b"\r\n"
    assert [seen["method"] for seen in Echo.seen[:1]] == ["HEAD"]
    # Straight after each head comes the next response, not a body.
    second, _, rest = rest.partition(b"\r\n\r\n")
    assert status_of(second) == 404 and b"application/problem+json" in second
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest[:80]


def test_problems_carry_the_types_the_functions_use(gateway: int) -> None:
    unauthenticated = raw(gateway, b"GET /appointments HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert problem_of(unauthenticated)["type"] == "/problems/unauthenticated"
    missing = raw(gateway, b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert problem_of(missing)["type"] == "/problems/not-found"
    wrong = raw(gateway, b"DELETE /doctors HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert problem_of(wrong)["type"] == "/problems/method-not-allowed"
    assert b"\r\nAllow: GET, HEAD, OPTIONS, POST\r\n" in wrong


def test_heads_the_backends_would_refuse_are_refused_here_as_problems(gateway: int) -> None:
    """A header line over 8190 bytes, or over 100 fields: gunicorn's limits, which the gateway
    keeps as its own (uvicorn, the functions' server now, has none)."""
    many = b"".join(b"X-Field-%d: v\r\n" % n for n in range(97))
    long_line = b"X-Long: " + b"v" * 8180 + b"\r\n"
    for extra in (many, long_line):
        response = raw(gateway, b"GET /doctors HTTP/1.1\r\nHost: x\r\n" + extra + b"Connection: close\r\n\r\n")
        assert status_of(response) == 431
        assert problem_of(response)["type"] == "/problems/header-fields-too-large"
    assert Echo.seen == []
    fits = b"".join(b"X-Field-%d: v\r\n" % n for n in range(90)) + b"X-Long: " + b"v" * 8000 + b"\r\n"
    response = raw(gateway, b"GET /doctors HTTP/1.1\r\nHost: x\r\n" + fits + b"Connection: close\r\n\r\n")
    assert status_of(response) == 200
