"""The HTTP edge shared by all functions: routing, parsing, problem+json.

It works on any request with werkzeug's names (HttpRequest below) by duck typing:
shared/asgi.py adapts the Starlette request functions-framework's ASGI mode passes,
and the tests build werkzeug requests.
"""

from __future__ import annotations

import hmac
import inspect
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from shared import idempotency, logs
from shared.auth import USERINFO_HEADER, Caller, caller_from_header
from shared.errors import (
    BadRequest,
    DomainError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from shared.settings import get_settings
from shared.unit_of_work import UnitOfWork, run_and_commit

MAX_BODY_BYTES = 64 * 1024
EDGE_HEADER = "X-Clinic-Edge"
# What a browser on an allowed origin may send; the real request is still routed and
# answered 405 if its method does not fit the path.
CORS_METHODS = "GET, POST, PATCH"
CORS_REQUEST_HEADERS = "Authorization, Content-Type, Idempotency-Key"
CORS_EXPOSED_HEADERS = "Retry-After, Allow"
JSON = "application/json"
PROBLEM = "application/problem+json"

M = TypeVar("M", bound=BaseModel)
Response = tuple[bytes, int, dict[str, str]]
Reply = tuple[int, BaseModel | dict[str, Any]]

log = logs.get("clinic.web")


class HttpRequest(Protocol):
    method: str
    path: str
    content_length: int | None
    mimetype: str

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def args(self) -> Any: ...

    def get_data(self, cache: bool = ..., as_text: bool = ...) -> bytes: ...


class ApiRequest:
    """What a handler sees: path parameters, the caller, and typed query and body."""

    def __init__(self, raw: HttpRequest, params: dict[str, uuid.UUID]) -> None:
        self.raw = raw
        self.params = params
        self._data: bytes | None = None

    @property
    def caller(self) -> Caller:
        return caller_from_header(self.raw.headers.get(USERINFO_HEADER))

    def header(self, name: str) -> str | None:
        return self.raw.headers.get(name)

    @property
    def headers(self) -> Mapping[str, str]:
        return self.raw.headers

    def query(self, model: type[M]) -> M:
        values: dict[str, str] = {}
        for key in self.raw.args:
            items = self.raw.args.getlist(key)
            if len(items) != 1:
                raise BadRequest(f"query parameter {key!r} given {len(items)} times")
            if "\x00" in key or "\x00" in items[0]:
                raise BadRequest("query parameters must not contain NUL characters")
            values[key] = items[0]
        return _validate(model, values)

    def body(self, model: type[M]) -> M:
        if self.raw.mimetype != JSON:
            raise UnsupportedMediaType("send the body as application/json")
        if (self.raw.content_length or 0) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the body must be at most {MAX_BODY_BYTES} bytes")
        data = self.data
        if len(data) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the body must be at most {MAX_BODY_BYTES} bytes")
        try:
            payload = json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            raise BadRequest(f"the body is not valid JSON: {error}") from error
        except RecursionError as error:  # `[[[[...` within 64 KiB nests deeper than Python recurses
            raise BadRequest("the body is not valid JSON: nested too deeply") from error
        if not isinstance(payload, dict):
            raise Unprocessable("the body must be a JSON object")
        return _validate(model, payload)

    def optional_body(self, model: type[M]) -> M:
        """The body, or the model's defaults when none was sent (an empty body)."""
        if (self.raw.content_length or 0) <= MAX_BODY_BYTES and not self.data.strip():
            return _validate(model, {})
        return self.body(model)

    @property
    def data(self) -> bytes:
        """The raw body, read once (a unit of work run again after a deadlock reads it again)."""
        if self._data is None:
            self._data = self.raw.get_data(cache=False)
        return self._data


def _validate(model: type[M], values: dict[str, Any]) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        problems = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise Unprocessable("the request has invalid fields", errors=problems) from error
    except ValueError as error:  # validators raising outside pydantic's wrapping
        raise Unprocessable(str(error)) from error


# (req) -> Reply, or (req, uow) -> Reply for a route run in a unit of work.
Handler = Callable[..., Reply]
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    in_unit_of_work: bool
    idempotent: bool

    def answer(self, req: ApiRequest) -> tuple[int, bytes]:
        """Runs the handler: in a unit of work committed if it returns (and run again
        after a deadlock), and once per Idempotency-Key if the route is idempotent."""
        if not self.in_unit_of_work:
            return _serialised(self.handler(req))
        return run_and_commit(lambda uow: self._answer_in(uow, req))

    def _answer_in(self, uow: UnitOfWork, req: ApiRequest) -> tuple[int, bytes]:
        key = idempotency.key_from_header(req.header(idempotency.HEADER)) if self.idempotent else None
        if key is None:
            return _serialised(self.handler(req, uow))
        request = idempotency.fingerprint(req.raw.method, req.raw.path, req.data)
        return idempotency.answer_once(uow, req.caller, key, request, lambda: _serialised(self.handler(req, uow)))


def _serialised(reply: Reply) -> tuple[int, bytes]:
    status, body = reply
    # pydantic serialises a model straight to JSON bytes, in Rust.
    return status, body.model_dump_json().encode() if isinstance(body, BaseModel) else json.dumps(body).encode()


class Router:
    """Method + path template -> handler. Path ids are uuids; anything else is a 404."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._routes: list[Route] = []
        self._templates: list[tuple[str, str]] = []

    @property
    def routes(self) -> list[tuple[str, str]]:
        """(method, path template) of every route, in the order they were declared."""
        return list(self._templates)

    def route(self, method: str, template: str, *, idempotent: bool = False) -> Callable[[Handler], Handler]:
        """A handler `(req, uow) -> (status, body)` runs in a unit of work, committed when it
        returns; one that takes only `req` is called as it is. An idempotent route answers
        a repeated Idempotency-Key with the first answer."""
        pattern = re.compile(_PARAM.sub(r"(?P<\1>[^/]+)", template) + "/?")

        def register(handler: Handler) -> Handler:
            takes_uow = len(inspect.signature(handler).parameters) == 2
            self._routes.append(Route(method, pattern, handler, takes_uow, idempotent))
            self._templates.append((method, template))
            return handler

        return register

    def __call__(self, request: HttpRequest) -> Response:
        body, status, headers = self._answer(request)
        headers.update(_cors(request))
        if request.method == "HEAD":
            # RFC 9110 9.3.2: GET's status and headers, the size of GET's content, no content.
            headers["Content-Length"] = str(len(body))
            body = b""
        return body, status, headers

    def _answer(self, request: HttpRequest) -> Response:
        logs.set_trace(request.headers.get("X-Cloud-Trace-Context") or request.headers.get("traceparent"))
        try:
            _require_edge(request)
            if request.method == "OPTIONS" and get_settings().cors_allowed_origins:
                return _preflight()
            route, params = self._match(request.method, request.path)
            status, data = route.answer(ApiRequest(request, params))
            return data, status, {"Content-Type": JSON}
        except DomainError as error:
            if error.status >= 500:
                log.warning("unavailable: %s", error.detail, extra={"fields": {"route": request.path}})
            return problem(error)
        except Exception:
            log.exception("unhandled error", extra={"fields": {"function": self.name, "method": request.method}})
            return _problem_body(500, "Internal error", "/problems/internal", "an unexpected error; it was logged")

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, uuid.UUID]]:
        allowed: list[str] = []
        # HEAD is GET without the content (RFC 9110 9.3.2).
        wanted = "GET" if method == "HEAD" else method
        for route in self._routes:
            # fullmatch: `$` would also match before a trailing newline ("/doctors%0A").
            found = route.pattern.fullmatch(path)
            if not found:
                continue
            # An id that is no uuid names nothing, whatever the method: 404, not 405.
            params = {k: _path_id(v) for k, v in found.groupdict().items()}
            if route.method != wanted:
                allowed += [route.method, "HEAD"] if route.method == "GET" else [route.method]
                continue
            return route, params
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed on {path}", sorted(set(allowed)))
        raise NotFound(f"no route for {method} {path}")


def _path_id(text: str) -> uuid.UUID:
    """A uuid in its one written form (any case): `{...}`, `urn:uuid:` and unhyphenated
    spellings of it would be other URLs of the same resource."""
    try:
        value = uuid.UUID(text)
    except ValueError:
        raise NotFound("no such resource (ids are uuids)") from None
    if str(value) != text.lower():
        raise NotFound("no such resource (ids are written 8-4-4-4-12)")
    return value


def _preflight() -> Response:
    headers = {
        "Access-Control-Allow-Methods": CORS_METHODS,
        "Access-Control-Allow-Headers": CORS_REQUEST_HEADERS,
        "Access-Control-Max-Age": "600",
    }
    return b"", 204, headers


def _cors(request: HttpRequest) -> dict[str, str]:
    """The Access-Control headers for a request from an allowed browser origin."""
    origin = request.headers.get("Origin")
    allowed = get_settings().cors_allowed_origins
    if not origin or not allowed:
        return {}
    if "*" in allowed:
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": CORS_EXPOSED_HEADERS}
    if origin not in allowed:
        return {"Vary": "Origin"}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": CORS_EXPOSED_HEADERS,
        "Vary": "Origin",
    }


def _require_edge(request: HttpRequest) -> None:
    """In production, only requests that came through the load balancer (and Cloud Armor)."""
    expected = get_settings().edge_token
    if expected is None:
        return
    given = request.headers.get(EDGE_HEADER) or ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden("call the API at its own domain, not at the gateway's host name")


def problem(error: DomainError) -> Response:
    body, status, headers = _problem_body(error.status, error.title, error.type_, error.public_detail, error.errors)
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = ", ".join(error.allow)
    return body, status, headers


def _problem_body(
    status: int, title: str, type_: str, detail: str, errors: list[dict[str, Any]] | None = None
) -> Response:
    payload: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if errors:
        payload["errors"] = errors
    return json.dumps(payload).encode(), status, {"Content-Type": PROBLEM}
