"""The local API gateway: the same OpenAPI document API Gateway deploys, on :8080.

Like API Gateway it matches the route, verifies the RS256 JWT of secured routes
against the issuer and JWKS of `securityDefinitions`, and forwards to the route's
`x-google-backend` (APPEND_PATH_TO_ADDRESS) with the verified claims, base64url
JSON, in X-Apigateway-Api-Userinfo. The caller's own Authorization header moves to
X-Forwarded-Authorization, as API Gateway does.

It is one asyncio process speaking HTTP/1.1 itself (keep-alive both ways, bodies
by Content-Length or chunked): every request of a laptop's stack passes through
it, and a WSGI server's per-request machinery cost more CPU than the forwarding.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import secrets
import signal
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

import jwt
import yaml

from local.paths import OPENAPI
from local.webapp import WebApp
from shared.errors import (
    BadRequest,
    DatabaseUnavailable,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
)

log = logging.getLogger("clinic.gateway")

USERINFO = "X-Apigateway-Api-Userinfo"
# Hop-by-hop headers, and the identity header a client must never be able to forge.
_DROP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-authorization",
    "host",
    "content-length",
    USERINFO.lower(),
    "x-forwarded-authorization",
    # The gateway answers `Expect: 100-continue` itself and forwards the body whole.
    "expect",
}


@dataclass(frozen=True)
class Operation:
    method: str
    backend: str
    secured: bool
    operation_id: str


@dataclass(frozen=True)
class Route:
    template: str
    pattern: re.Pattern[str]
    operations: dict[str, Operation]


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: Headers | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers or []


# The problem types the functions use, so a client can rely on `type` whichever of the
# two answered; 408, 414, 431 and 500 only the gateway answers itself.
PROBLEM_TYPES = {
    error.status: error.type_
    for error in (BadRequest, Unauthenticated, NotFound, MethodNotAllowed, PayloadTooLarge, DatabaseUnavailable)
} | {
    408: "/problems/request-timeout",
    414: "/problems/uri-too-long",
    431: "/problems/header-fields-too-large",
    500: "/problems/internal",
}


def render(document: str, values: dict[str, str]) -> dict[str, Any]:
    """Fills the Terraform template variables the way templatefile does."""
    # Only ${name} is a template variable; `$ref` is plain text, as in Terraform.
    text = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], document)
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def load_routes(spec: dict[str, Any]) -> list[Route]:
    routes = []
    for template, item in spec["paths"].items():
        pattern = re.compile(re.sub(r"\{(\w+)\}", r"[^/]+", template))
        operations = {}
        for method, op in item.items():
            backend = op["x-google-backend"]
            assert backend.get("path_translation") == "APPEND_PATH_TO_ADDRESS", template
            operations[method.upper()] = Operation(
                method.upper(), backend["address"].rstrip("/"), bool(op.get("security")), op["operationId"]
            )
        routes.append(Route(template, pattern, operations))
    # Literal segments before parameters, as API Gateway matches them.
    routes.sort(key=lambda r: (r.template.count("{"), -len(r.template)))
    return routes


class Verifier:
    """RS256 tokens of one issuer, checked against its JWKS (a file locally).

    With `emulator_project` (set by the local stack only, never a default), it also
    takes the Firebase Auth emulator's unsigned tokens (alg "none") of that project,
    whose claims are a production ID token's: decision 0010.
    """

    def __init__(self, issuer: str, jwks_path: Path, audiences: list[str], emulator_project: str | None = None) -> None:
        self.issuer = issuer
        self.audiences = audiences
        self.emulator_project = emulator_project
        jwks = json.loads(jwks_path.read_text())
        self.keys = {k.get("kid"): jwt.PyJWK(k).key for k in jwks["keys"]}
        self._verified: dict[str, tuple[dict[str, Any], float, str]] = {}

    # Verified tokens, until they expire: a client sends the same token for an hour, and
    # checking its RS256 signature and claims on every request is most of the gateway's
    # own work. Bounded; the cache is simply emptied when full.
    CACHE_SIZE = 10_000
    LEEWAY = 30

    def verify(self, authorization: str | None) -> dict[str, Any]:
        return self._entry(authorization)[0]

    def userinfo(self, authorization: str | None) -> str:
        """The claims as API Gateway forwards them: base64url JSON, unpadded."""
        return self._entry(authorization)[2]

    def _entry(self, authorization: str | None) -> tuple[dict[str, Any], float, str]:
        if authorization:
            cached = self._verified.get(authorization)
            if cached is not None and time.time() <= cached[1]:
                return cached
        claims = self._verify(authorization)
        assert authorization is not None
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()
        userinfo = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        # Only `exp` can turn a verified token invalid later (nbf and iat only get older).
        entry = self._verified[authorization] = (claims, float(claims["exp"]) + self.LEEWAY, userinfo)
        return entry

    def _verify(self, authorization: str | None) -> dict[str, Any]:
        if not authorization:
            raise Problem(401, "Unauthenticated", "this route needs 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise Problem(401, "Unauthenticated", "the Authorization header must be 'Bearer <token>'")
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") == "none":
                return self._emulator_claims(token)
            key = self.keys.get(header.get("kid")) if len(self.keys) > 1 else next(iter(self.keys.values()))
            if key is None:
                raise jwt.InvalidTokenError("unknown signing key")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audiences,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "sub"]},
                leeway=self.LEEWAY,
            )
        except jwt.ExpiredSignatureError as error:
            raise Problem(401, "Unauthenticated", "the token has expired") from error
        except jwt.InvalidTokenError as error:
            raise Problem(401, "Unauthenticated", f"the token is not valid: {error}") from error
        return claims

    def _emulator_claims(self, token: str) -> dict[str, Any]:
        """An unsigned token: only the auth emulator's, and only where the stack said so."""
        if self.emulator_project is None:
            raise jwt.InvalidTokenError("an unsigned token (alg none) is never taken here")
        project = self.emulator_project
        claims: dict[str, Any] = jwt.decode(
            token,
            options={
                "verify_signature": False,
                "verify_exp": True,
                "verify_nbf": True,
                "verify_iat": True,
                "verify_aud": True,
                "verify_iss": True,
                "require": ["exp", "iss", "sub", "aud"],
            },
            audience=project,
            issuer=f"https://securetoken.google.com/{project}",
            leeway=self.LEEWAY,
        )
        return claims


Headers = list[tuple[str, str]]


@dataclass
class Request:
    """A request as the client sent it; `target` is the raw path?query."""

    method: str
    target: str
    headers: Headers
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)


def header_value(headers: Headers, name: str) -> str | None:
    """The first value of a header, by name in any case."""
    lowered = name.lower()
    return next((value for key, value in headers if key.lower() == lowered), None)


@dataclass
class Reply:
    status: int
    headers: Headers = field(default_factory=list)  # repeated headers stay repeated
    data: bytes = b""


class Gateway:
    def __init__(
        self,
        spec: dict[str, Any],
        jwks_path: Path,
        *,
        emulator_project: str | None = None,
        web: WebApp | None = None,
    ) -> None:
        self.routes = load_routes(spec)
        provider = spec["securityDefinitions"]["identity_provider"]
        self.verifier = Verifier(
            provider["x-google-issuer"], jwks_path, provider["x-google-audiences"].split(","), emulator_project
        )
        self.http = Upstream(connect_timeout=2.0, read_timeout=60.0)
        # The web app's files at its paths (/, /index.html, /assets/*, /config.json).
        self.web = web

    def match(self, method: str, path: str) -> Operation:
        for route in self.routes:
            # fullmatch: `$` would also match before a trailing newline ("/doctors%0A").
            if route.pattern.fullmatch(path):
                if method not in route.operations:
                    allow = [("Allow", ", ".join(sorted(route.operations)))]
                    raise Problem(405, "Method not allowed", f"{method} is not allowed on {path}", allow)
                return route.operations[method]
        raise Problem(404, "Not found", f"no route for {method} {path}")

    def forward(self, request: Request) -> tuple[str, Headers]:
        """The backend URL and the headers to send it, or a Problem."""
        raw_path, _, query = request.target.partition("?")
        if len(request.target) > MAX_URL:
            # gunicorn refused longer request lines with an HTML page; kept as the gateway's limit.
            raise Problem(414, "URI too long", f"the path and query must be at most {MAX_URL} characters")
        # Matched decoded, as a WSGI server would give it; sent encoded again, so a `%1F`
        # in an id is not a control character in the backend's request line.
        path = unquote_to_bytes(raw_path).decode("latin-1") or "/"
        operation = self.match(request.method, path)
        authorization = request.header("Authorization")
        headers = [(k, v) for k, v in request.headers if k.lower() not in _DROP and k.lower() != "authorization"]
        if operation.secured:
            headers.append((USERINFO, self.verifier.userinfo(authorization)))
        if authorization:
            headers.append(("X-Forwarded-Authorization", authorization))
        if not any(k.lower() in ("traceparent", "x-cloud-trace-context") for k, _ in headers):
            # Google's front end starts a trace for a request that brings none; so does this.
            headers.append(("traceparent", f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"))
        url = operation.backend + quote(path.encode("latin-1"), safe="/:@!$&'()*+,;=-._~")
        if query:
            # Bytes a query may not hold as they are (a tab, a space, UTF-8 sent raw) are
            # percent-encoded, which reads back as the same values; the backends' server
            # would refuse them with a plain-text 400. Escapes already there stay as sent.
            url += "?" + quote(query.encode("latin-1"), safe="/?:@!$&'()*+,;=-._~%")
        return url, headers

    async def handle(self, request: Request) -> Reply:
        try:
            if self.web is not None and (page := self.web.serve(request.method, request.target, request.headers)):
                return Reply(*page)
            url, headers = self.forward(request)
            try:
                upstream = await self.http.request(request.method, url, request.body or None, headers)
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as error:
                log.warning("backend %s did not answer: %r", url.split("?")[0], error)
                raise Problem(503, "Service unavailable", "the backend did not answer; try again shortly") from error
            kept = [(k, v) for k, v in upstream.headers if k.lower() not in _HOP_BY_HOP]
            if request.method == "HEAD":
                # The backend's Content-Length is the size of GET's content, which came without it.
                kept += [(k, v) for k, v in upstream.headers if k.lower() == "content-length"]
            return Reply(upstream.status, kept, upstream.data)
        except Problem as problem:
            return problem_reply(problem)


# Response headers the gateway sets itself for its own connection to the client.
_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive", "content-length"}


def problem_reply(problem: Problem) -> Reply:
    payload = json.dumps(
        {
            "type": PROBLEM_TYPES[problem.status],
            "title": problem.title,
            "status": problem.status,
            "detail": problem.detail,
        }
    ).encode()
    headers = [("Content-Type", "application/problem+json"), *problem.headers]
    if problem.status == 401:
        headers.append(("WWW-Authenticate", "Bearer"))
    if problem.status == 503:
        headers.append(("Retry-After", "2"))
    return Reply(problem.status, headers, payload)


# -- HTTP/1.1 on asyncio streams -------------------------------------------------------------

MAX_BODY = 32 * 1024 * 1024  # API Gateway's request size limit
# Below the 4094-byte request line gunicorn accepts (the functions' server until
# decision 0007; uvicorn takes longer ones, and the limits below are kept as the gateway's own).
MAX_URL = 4000
# The request line and headers together; a longer head is refused before it is parsed.
MAX_HEAD = 64 * 1024
# gunicorn's limit_request_field_size and limit_request_fields (as above), less what the gateway
# adds: X-Forwarded-Authorization repeats Authorization under a name 12 bytes longer,
# and four header fields (that one, the identity header, Host, Content-Length).
MAX_HEADER_LINE = 8190 - 12
MAX_HEADER_FIELDS = 100 - 4
# How long a client's idle keep-alive connection, a slow request head, or a body is waited for.
CLIENT_IDLE_S = 30.0


class BadMessage(ValueError):
    """The bytes are not an HTTP/1.1 message this gateway can take."""


class HeadTooLarge(BadMessage):
    def __init__(self, in_start_line: bool) -> None:
        super().__init__("the start line is too long" if in_start_line else "the message head is too large")
        self.in_start_line = in_start_line


async def read_head(reader: asyncio.StreamReader) -> list[bytes] | None:
    """The lines of a message head (start line first), or None at a clean end of stream."""
    lines: list[bytes] = []
    size = 0
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError as error:
            if not lines and not error.partial.strip():
                return None
            raise BadMessage("the connection ended inside a message head") from error
        except asyncio.LimitOverrunError as error:
            raise HeadTooLarge(in_start_line=not lines) from error
        size += len(line)
        if size > MAX_HEAD:
            raise HeadTooLarge(in_start_line=not lines)
        if line == b"\r\n":
            if lines:
                return lines
            continue  # an empty line before a request line is ignored (RFC 9112, 2.2)
        lines.append(line[:-2])


# Control characters a line must not hold: a bare CR or LF forwarded to a backend could
# end the line there and smuggle in a header (the identity header, say).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# A header name is a token (RFC 9110 5.1); the backends' server refuses anything else
# with a plain-text 400.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def parse_headers(lines: list[bytes]) -> Headers:
    headers = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name) or _CONTROL.search(line):
            raise BadMessage(f"a malformed header line: {line[:80]!r}")
        headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    return headers


def _check_header_limits(lines: list[bytes]) -> None:
    """A header line over 8190 bytes or more than 100 header fields (gunicorn's limits,
    which a backend's server may have) is refused here, as problem+json, leaving room
    for the headers the gateway adds itself."""
    if len(lines) > MAX_HEADER_FIELDS:
        raise Problem(431, "Request header fields too large", f"at most {MAX_HEADER_FIELDS} header fields")
    if any(len(line) > MAX_HEADER_LINE for line in lines):
        raise Problem(431, "Request header fields too large", f"a header line is over {MAX_HEADER_LINE} bytes")


_LENGTH = re.compile(r"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")


def body_framing(headers: Headers) -> tuple[bool, int]:
    """(chunked, Content-Length) of a request; a message whose length is in doubt is 400.

    Two servers that read an ambiguous length differently split the stream into
    different requests (request smuggling), so the gateway refuses, as RFC 9112 6.3
    asks: Content-Length given with Transfer-Encoding, Content-Length values that
    disagree, or one that is not plain digits (Python's int() would take "+5" or "1_0").
    """
    encodings = [v.strip().lower() for k, v in headers if k.lower() == "transfer-encoding"]
    lengths = {v.strip() for k, v in headers if k.lower() == "content-length"}
    if encodings and lengths:
        raise BadMessage("Content-Length and Transfer-Encoding together")
    if encodings:
        if ",".join(encodings).replace(" ", "") != "chunked":
            raise BadMessage("the only Transfer-Encoding taken is chunked")
        return True, 0
    if len(lengths) > 1:
        raise BadMessage("Content-Length headers that disagree")
    if not lengths:
        return False, 0
    (text,) = lengths
    if not _LENGTH.fullmatch(text):
        raise BadMessage("invalid Content-Length")
    return False, int(text)


async def read_body(reader: asyncio.StreamReader, headers: Headers, limit: int) -> bytes:
    """The body a Content-Length or chunked encoding delimits; none without either."""
    chunked, length = body_framing(headers)
    if chunked:
        chunks = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            # Plain hex digits only: int() would also take "-1", "+7", "0x7", "0_7" and " 7".
            digits = size_line[:-2].split(b";")[0]
            if not _CHUNK_SIZE.fullmatch(digits):
                raise BadMessage("a malformed chunk size")
            size = int(digits, 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, ignored
                    pass
                return bytes(chunks)
            if len(chunks) + size > limit:
                raise Problem(413, "Payload too large", "the body is larger than 32 MiB")
            chunks += await reader.readexactly(size)
            await reader.readexactly(2)
    if length > limit:
        raise Problem(413, "Payload too large", "the request body is larger than 32 MiB")
    return await reader.readexactly(length) if length else b""


def encode_reply(reply: Reply, keep_alive: bool, head: bool = False) -> bytes:
    """The reply on the wire; to a HEAD request, its head only (RFC 9110, 9.3.2)."""
    lines = [f"HTTP/1.1 {reply.status} {_reason(reply.status)}"]
    lines += [f"{k}: {v}" for k, v in reply.headers]
    if not (head and header_value(reply.headers, "Content-Length") is not None):
        lines.append(f"Content-Length: {len(reply.data)}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else reply.data)


async def serve_connection(gateway: Gateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Requests of one client connection, one after another, until either side closes."""
    try:
        while True:
            keep_alive, method = False, ""
            try:
                # asyncio.timeout, not wait_for: wait_for wraps the read in a task of its own,
                # a cost every request paid.
                async with asyncio.timeout(CLIENT_IDLE_S):
                    lines = await read_head(reader)
                if lines is None:
                    return
                parts = lines[0].decode("latin-1").split(" ")
                if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or _CONTROL.search(lines[0]):
                    raise BadMessage(f"a malformed request line: {lines[0][:80]!r}")
                method, target, version = parts
                _check_header_limits(lines[1:])
                headers = parse_headers(lines[1:])
                request = Request(method, target, headers)
                connection = (request.header("Connection") or "").lower()
                keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
                if (request.header("Expect") or "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    # A whole body, not each read: 32 MiB in 30 s is over 1 MB/s, ample on
                    # one machine, and a body shorter than its Content-Length ends here.
                    async with asyncio.timeout(CLIENT_IDLE_S):
                        request.body = await read_body(reader, headers, MAX_BODY)
                except TimeoutError:
                    detail = f"the request body did not arrive within {CLIENT_IDLE_S:g} s"
                    raise Problem(408, "Request timeout", detail) from None
                reply = await gateway.handle(request)
            except Problem as problem:
                # The rest of this request was not read: the connection cannot go on.
                reply, keep_alive = problem_reply(problem), False
            except HeadTooLarge as error:
                if error.in_start_line:
                    refusal = Problem(414, "URI too long", f"the path and query must be at most {MAX_URL} characters")
                else:
                    refusal = Problem(431, "Request header fields too large", f"the head is over {MAX_HEAD} bytes")
                reply, keep_alive = problem_reply(refusal), False
            except (BadMessage, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
                detail = str(error) or "a malformed request"
                reply, keep_alive = problem_reply(Problem(400, "Bad request", detail)), False
            except TimeoutError:
                return
            except Exception:
                log.exception("the gateway failed on a request")
                reply, keep_alive = problem_reply(Problem(500, "Internal error", "the local gateway failed")), False
            writer.write(encode_reply(reply, keep_alive, head=method == "HEAD"))
            await writer.drain()
            if not keep_alive:
                return
    except (ConnectionError, OSError):
        return
    finally:
        writer.close()


@dataclass
class _Idle:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    since: float


class Upstream:
    """Keep-alive HTTP/1.1 to the backends: idle connections are kept per backend and reused.

    A connection the backend closed while idle is noticed (its end of stream has
    arrived) before it is used, and replaced; nothing is ever retried. That check
    races with the backend's keep-alive timer (a connection idle for just under
    2 s passes it, then the backend closes it as the request goes out: a reset,
    a 503), so a connection idle for REUSE_IDLE or longer is not reused.
    """

    # Well below the backends' keep-alive (gunicorn's 2 s, which its uvicorn worker
    # takes), so a reused connection is never one the backend is about to close.
    REUSE_IDLE = 1.0

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[str, list[_Idle]] = {}

    async def request(self, method: str, url: str, body: bytes | None, headers: Headers) -> Reply:
        scheme, netloc, target = _split(url)
        if scheme != "http":
            raise ValueError(f"the local gateway forwards over http only: {url}")
        reader, writer = await self._connection(netloc)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {netloc}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
            async with asyncio.timeout(self.read_timeout):
                reply, keep = await _read_reply(reader, method)
        except BaseException:
            writer.close()
            raise
        if keep:
            self._idle.setdefault(netloc, []).append(_Idle(reader, writer, time.monotonic()))
        else:
            writer.close()
        return reply

    async def _connection(self, netloc: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        idle = self._idle.get(netloc, [])
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used first
            if now - conn.since < self.REUSE_IDLE and not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn.reader, conn.writer
            conn.writer.close()
        host, _, port = netloc.rpartition(":")
        async with asyncio.timeout(self.connect_timeout):
            return await asyncio.open_connection(host, int(port))

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.writer.close()
        self._idle.clear()


async def _read_reply(reader: asyncio.StreamReader, method: str) -> tuple[Reply, bool]:
    """A backend's response, and whether its connection can be used again."""
    while True:
        lines = await read_head(reader)
        if lines is None:
            raise asyncio.IncompleteReadError(b"", None)
        status_line = lines[0].decode("latin-1").split(" ", 2)
        version, status = status_line[0], int(status_line[1])
        if not 100 <= status < 200:  # an interim response (100 Continue): the real one follows
            break
    headers = parse_headers(lines[1:])
    keep = "close" not in (header_value(headers, "Connection") or "").lower() and version == "HTTP/1.1"
    if method == "HEAD" or status in (204, 304):
        return Reply(status, headers), keep
    lowered = {k.lower() for k, _ in headers}
    if "content-length" in lowered or "transfer-encoding" in lowered:
        return Reply(status, headers, await read_body(reader, headers, 1 << 62)), keep
    return Reply(status, headers, await reader.read()), False


@lru_cache(maxsize=64)
def _base(url_prefix: str) -> tuple[str, str]:
    parts = urlsplit(url_prefix)
    return parts.scheme, parts.netloc


def _split(url: str) -> tuple[str, str, str]:
    """(scheme, host:port, path?query) of an absolute URL."""
    cut = url.find("/", url.find("//") + 2)
    if cut < 0:
        cut = len(url)
    scheme, netloc = _base(url[:cut])
    return scheme, netloc, url[cut:] or "/"


@lru_cache(maxsize=128)  # an enum lookup per response was ~1.5% of the gateway's CPU
def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def create_app(config_path: str | None = None) -> Gateway:
    """The gateway; config is the JSON the local stack writes (template values, JWKS path)."""
    config = json.loads(Path(config_path or _default_config()).read_text())
    spec = render(OPENAPI.read_text(), config["template"])
    web = None
    if config.get("web_dir"):
        web = WebApp(Path(config["web_dir"]), config.get("web_config"))
    return Gateway(spec, Path(config["jwks_path"]), emulator_project=config.get("emulator_project"), web=web)


def _default_config() -> str:
    import os

    return os.environ["CLINIC_GATEWAY_CONFIG"]


async def serve(gateway: Gateway, host: str, port: int, ready: asyncio.Event | None = None) -> None:
    """Serves until SIGTERM or SIGINT (or until cancelled)."""
    server = await asyncio.start_server(
        lambda reader, writer: serve_connection(gateway, reader, writer), host, port, limit=MAX_HEAD
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(RuntimeError, ValueError):  # not the main thread (tests): cancelled instead
            loop.add_signal_handler(signum, stop.set)
    if ready is not None:
        ready.set()
    try:
        async with server:
            await stop.wait()
    finally:
        gateway.http.close()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="local API gateway")
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    asyncio.run(serve(create_app(args.config), args.host, args.port))


if __name__ == "__main__":
    main()
