"""The local API gateway: the same OpenAPI document API Gateway deploys, on :8080.

Like API Gateway it matches the route, verifies the RS256 JWT of secured routes
against the issuer and JWKS of `securityDefinitions`, and forwards to the route's
`x-google-backend` (APPEND_PATH_TO_ADDRESS) with the verified claims, base64url
JSON, in X-Apigateway-Api-Userinfo. The caller's own Authorization header moves to
X-Forwarded-Authorization, as API Gateway does.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import select
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jwt
import yaml

from local.paths import OPENAPI

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

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
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def render(document: str, values: dict[str, str]) -> dict[str, Any]:
    """Fills the Terraform template variables the way templatefile does."""
    # Only ${name} is a template variable; `$ref` is plain text, as in Terraform.
    text = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], document)
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def load_routes(spec: dict[str, Any]) -> list[Route]:
    routes = []
    for template, item in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"[^/]+", template) + "$")
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
    """RS256 tokens of one issuer, checked against its JWKS (a file locally)."""

    def __init__(self, issuer: str, jwks_path: Path, audiences: list[str]) -> None:
        self.issuer = issuer
        self.audiences = audiences
        jwks = json.loads(jwks_path.read_text())
        self.keys = {k.get("kid"): jwt.PyJWK(k).key for k in jwks["keys"]}
        self._verified: dict[str, tuple[dict[str, Any], float]] = {}

    # Verified tokens, until they expire: a client sends the same token for an hour, and
    # checking its RS256 signature and claims on every request is most of the gateway's
    # own work. Bounded; the cache is simply emptied when full.
    CACHE_SIZE = 10_000
    LEEWAY = 30

    def verify(self, authorization: str | None) -> dict[str, Any]:
        if authorization:
            cached = self._verified.get(authorization)
            if cached is not None and time.time() <= cached[1]:
                return cached[0]
        claims = self._verify(authorization)
        assert authorization is not None
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()
        # Only `exp` can turn a verified token invalid later (nbf and iat only get older).
        self._verified[authorization] = (claims, float(claims["exp"]) + self.LEEWAY)
        return claims

    def _verify(self, authorization: str | None) -> dict[str, Any]:
        if not authorization:
            raise Problem(401, "Unauthenticated", "this route needs 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise Problem(401, "Unauthenticated", "the Authorization header must be 'Bearer <token>'")
        try:
            header = jwt.get_unverified_header(token)
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


class Gateway:
    def __init__(self, spec: dict[str, Any], jwks_path: Path) -> None:
        self.routes = load_routes(spec)
        provider = spec["securityDefinitions"]["identity_provider"]
        self.verifier = Verifier(provider["x-google-issuer"], jwks_path, provider["x-google-audiences"].split(","))
        self.http = Upstream(connect_timeout=2.0, read_timeout=60.0)

    def match(self, method: str, path: str) -> Operation:
        for route in self.routes:
            if route.pattern.match(path):
                if method not in route.operations:
                    raise Problem(405, "Method not allowed", f"{method} is not allowed on {path}")
                return route.operations[method]
        raise Problem(404, "Not found", f"no route for {method} {path}")

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "") or "/"
        try:
            if len(path) + len(environ.get("QUERY_STRING", "")) > MAX_URL:
                # The functions' servers refuse longer request lines with an HTML page.
                raise Problem(414, "URI too long", f"the path and query must be at most {MAX_URL} characters")
            operation = self.match(method, path)
            headers = {
                key[5:].replace("_", "-").title(): value
                for key, value in environ.items()
                if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in _DROP
            }
            headers.pop("Authorization", None)
            if environ.get("CONTENT_TYPE"):
                headers["Content-Type"] = environ["CONTENT_TYPE"]
            if operation.secured:
                claims = self.verifier.verify(environ.get("HTTP_AUTHORIZATION"))
                encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
                headers[USERINFO] = encoded
            if environ.get("HTTP_AUTHORIZATION"):
                headers["X-Forwarded-Authorization"] = environ["HTTP_AUTHORIZATION"]
            body = _read_body(environ)
            # PATH_INFO is percent-decoded: encode it again, or a `%1F` in an id would be a
            # control character in the request line (refused by the HTTP client: a 503).
            url = operation.backend + quote(path.encode("latin-1"), safe="/:@!$&'()*+,;=-._~")
            if environ.get("QUERY_STRING"):
                url += "?" + environ["QUERY_STRING"]
            try:
                upstream = self.http.request(method, url, body=body, headers=headers)
            except (OSError, http.client.HTTPException) as error:
                raise Problem(503, "Service unavailable", f"the backend did not answer: {error!r}") from error
            reply = [
                (k, v)
                for k, v in upstream.headers.items()
                if k.lower() not in ("connection", "transfer-encoding", "keep-alive", "content-length")
            ]
            data = upstream.data
            reply.append(("Content-Length", str(len(data))))
            start_response(f"{upstream.status} {_reason(upstream.status)}", reply)
            return [data]
        except Problem as problem:
            payload = json.dumps(
                {
                    "type": "/problems/gateway",
                    "title": problem.title,
                    "status": problem.status,
                    "detail": problem.detail,
                }
            ).encode()
            extra = [("WWW-Authenticate", "Bearer")] if problem.status == 401 else []
            if problem.status == 503:
                extra.append(("Retry-After", "2"))
            start_response(
                f"{problem.status} {problem.title}",
                [("Content-Type", "application/problem+json"), ("Content-Length", str(len(payload))), *extra],
            )
            return [payload]


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage  # .items() keeps repeated headers
    data: bytes


class Upstream:
    """Keep-alive HTTP/1.1 to the backends: one connection per gateway thread and backend.

    http.client on a connection the thread owns costs a fraction of urllib3's pool
    (no pool locking, retry or timeout objects per request), which matters because
    the gateway adds its CPU to every request on a 2-core laptop. A connection the
    backend closed while idle (gunicorn keeps one alive for 2 s) is noticed before
    it is used, as urllib3 does, and replaced; nothing is ever retried. That check
    alone races with the backend's keep-alive timer (a connection idle for just
    under 2 s passes it, then the backend closes it as the request goes out: a
    reset, a 503), so a connection idle for REUSE_IDLE or longer is not reused.
    """

    # Well below gunicorn's keep-alive (2 s), so a reused connection is never one the
    # backend is about to close.
    REUSE_IDLE = 1.0

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._local = threading.local()

    def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Reply:
        scheme, netloc, target = _split(url)
        connections: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("connections", {})
        last_used: dict[str, float] = self._local.__dict__.setdefault("last_used", {})
        conn = connections.get(netloc)
        now = time.monotonic()
        if conn is not None and (now - last_used.get(netloc, 0.0) >= self.REUSE_IDLE or _dropped(conn)):
            conn.close()
            conn = None
        if conn is None:
            if scheme != "http":
                raise http.client.InvalidURL(f"the local gateway forwards over http only: {url}")
            conn = http.client.HTTPConnection(netloc, timeout=self.connect_timeout)
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(self.read_timeout)
            connections[netloc] = conn
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            conn.close()
            connections.pop(netloc, None)
            raise
        if response.will_close:
            conn.close()
            connections.pop(netloc, None)
        else:
            last_used[netloc] = time.monotonic()
        return Reply(response.status, response.msg, data)


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


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection that is readable was closed by the other end."""
    if conn.sock is None:
        return True
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    return bool(poller.poll(0))


MAX_BODY = 32 * 1024 * 1024  # API Gateway's request size limit
# Below the 4094-byte request line gunicorn (and so functions-framework) accepts.
MAX_URL = 4000


def _read_body(environ: Environ) -> bytes | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError as error:
        raise Problem(400, "Bad request", "invalid Content-Length") from error
    if length > MAX_BODY:
        raise Problem(413, "Payload too large", "the request body is larger than 32 MiB")
    if length <= 0:
        return None
    data: bytes = environ["wsgi.input"].read(length)
    return data


@lru_cache(maxsize=128)  # an enum lookup per response was ~1.5% of the gateway's CPU
def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def create_app(config_path: str | None = None) -> Gateway:
    """The WSGI app; config is the JSON the local stack writes (template values, JWKS path)."""
    config = json.loads(Path(config_path or _default_config()).read_text())
    spec = render(OPENAPI.read_text(), config["template"])
    return Gateway(spec, Path(config["jwks_path"]))


def _default_config() -> str:
    import os

    return os.environ["CLINIC_GATEWAY_CONFIG"]


def serve(config_path: str, host: str, port: int, workers: int, threads: int) -> None:
    import gunicorn.app.base

    class _App(gunicorn.app.base.BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in {
                "bind": f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                "worker_class": "gthread",
                "loglevel": "warning",
                "accesslog": None,
                "timeout": 120,
                "keepalive": 30,
                # Long URLs reach the app, which answers 414 as problem+json.
                "limit_request_line": 8190,
            }.items():
                self.cfg.set(key, value)

        def load(self) -> Gateway:
            return create_app(config_path)

    _App().run()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="local API gateway")
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()
    serve(args.config, args.host, args.port, args.workers, args.threads)


if __name__ == "__main__":
    main()
