"""local/gateway.py: the verified-token cache and the keep-alive upstream connections."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from uuid import uuid4

import jwt
import pytest

from local import gateway, keys
from local.gateway import Problem, Upstream, Verifier


def bearer(state: Path, ttl: int = 3600) -> str:
    return "Bearer " + keys.make_token("patient", uuid4(), "p@example.com", "P", state=state, ttl=ttl)


def test_a_verified_token_is_not_verified_again(
    verifier: Verifier, key_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = bearer(key_state)
    first = verifier.verify(token)

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("verified twice")

    monkeypatch.setattr(gateway.jwt, "decode", refuse)
    assert verifier.verify(token) == first


def test_a_cached_token_is_refused_once_expired(
    verifier: Verifier, key_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = bearer(key_state, ttl=60)
    verifier.verify(token)
    later = time.time() + 60 + Verifier.LEEWAY + 5
    monkeypatch.setattr(gateway.time, "time", lambda: later)

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Later:
            return cls.fromtimestamp(later, tz)

    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)  # PyJWT's own clock for `exp`
    with pytest.raises(Problem) as caught:
        verifier.verify(token)
    assert caught.value.status == 401 and "expired" in caught.value.detail


def test_a_refused_token_is_not_cached(verifier: Verifier, key_state: Path) -> None:
    token = bearer(key_state) + "x"
    for _ in range(2):
        with pytest.raises(Problem):
            verifier.verify(token)
    assert verifier._verified == {}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    peers: ClassVar[list[tuple[str, int]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"] or 0))
        self.peers.append(self.client_address)
        reply = self.path.encode() + b" " + body
        self.send_response(201)
        self.send_header("Content-Length", str(len(reply)))
        self.send_header("X-Twice", "1")
        self.send_header("X-Twice", "2")
        if self.path == "/close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.peers = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_upstream_keeps_the_connection_and_reopens_a_closed_one(backend: str) -> None:
    async def scenario() -> None:
        upstream = Upstream(connect_timeout=2, read_timeout=5)
        plain = [("Content-Type", "text/plain")]
        first = await upstream.request("POST", backend + "/a?x=1", b"one", plain)
        second = await upstream.request("POST", backend + "/b", b"two", [])
        assert (first.status, first.data, second.data) == (201, b"/a?x=1 one", b"/b two")
        assert [v for k, v in first.headers if k == "X-Twice"] == ["1", "2"]
        assert _Handler.peers[0] == _Handler.peers[1]  # one keep-alive connection
        closing = await upstream.request("POST", backend + "/close", None, [])
        after = await upstream.request("POST", backend + "/c", b"", [])
        assert (closing.status, after.data) == (201, b"/c ")
        assert _Handler.peers[3] != _Handler.peers[2]  # a new connection after Connection: close
        upstream.close()

    asyncio.run(scenario())


def test_upstream_refused_is_an_oserror() -> None:
    upstream = Upstream(connect_timeout=1, read_timeout=1)
    with pytest.raises(OSError):
        asyncio.run(upstream.request("GET", "http://127.0.0.1:9/", None, []))
