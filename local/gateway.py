"""The local API gateway: the same OpenAPI document API Gateway deploys, on :8080.

Like API Gateway it matches the route, verifies the RS256 JWT of secured routes
against the issuer and JWKS of `securityDefinitions`, and forwards to the route's
`x-google-backend` (APPEND_PATH_TO_ADDRESS) with the verified claims, base64url
JSON, in X-Apigateway-Api-Userinfo. The caller's own Authorization header moves to
X-Forwarded-Authorization, as API Gateway does.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import urllib3
import yaml

from local.paths import OPENAPI

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

USERINFO = "X-Apigateway-Api-Userinfo"
# Hop-by-hop headers, and the identity header a client must never be able to forge.
_DROP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-authorization",
         "host", "content-length", USERINFO.lower(), "x-forwarded-authorization"}


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

    def verify(self, authorization: str | None) -> dict[str, Any]:
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
                token, key, algorithms=["RS256"], audience=self.audiences, issuer=self.issuer,
                options={"require": ["exp", "iss", "sub"]}, leeway=30,
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
        self.verifier = Verifier(
            provider["x-google-issuer"], jwks_path, provider["x-google-audiences"].split(",")
        )
        self.http = urllib3.PoolManager(num_pools=8, maxsize=64, retries=False,
                                        timeout=urllib3.Timeout(connect=2.0, read=60.0))

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
                upstream = self.http.request(method, url, body=body, headers=headers, preload_content=True,
                                             redirect=False)
            except urllib3.exceptions.HTTPError as error:
                raise Problem(503, "Service unavailable", f"the backend did not answer: {error}") from error
            reply = [(k, v) for k, v in upstream.headers.items()
                     if k.lower() not in ("connection", "transfer-encoding", "keep-alive", "content-length")]
            data = upstream.data
            reply.append(("Content-Length", str(len(data))))
            start_response(f"{upstream.status} {_reason(upstream.status)}", reply)
            return [data]
        except Problem as problem:
            payload = json.dumps({"type": "/problems/gateway", "title": problem.title,
                                  "status": problem.status, "detail": problem.detail}).encode()
            extra = [("WWW-Authenticate", "Bearer")] if problem.status == 401 else []
            if problem.status == 503:
                extra.append(("Retry-After", "2"))
            start_response(f"{problem.status} {problem.title}",
                           [("Content-Type", "application/problem+json"),
                            ("Content-Length", str(len(payload))), *extra])
            return [payload]


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
            for key, value in {"bind": f"{host}:{port}", "workers": workers, "threads": threads,
                               "worker_class": "gthread", "loglevel": "warning",
                               "accesslog": None, "timeout": 120, "keepalive": 30,
                               # Long URLs reach the app, which answers 414 as problem+json.
                               "limit_request_line": 8190}.items():
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

