"""Serving a Router under functions-framework's ASGI mode: uvicorn and httptools take the
HTTP, and the handler runs, synchronous as it is, on a thread of a pool.

Why not functions-framework's default (gunicorn's gthread worker and Flask): that runtime
alone costs ~0.35 ms of CPU per request before our code runs, where uvicorn, httptools
and one hop to a thread cost ~0.12 ms (bench/booking, phase r). The handlers and the
rules in shared/ stay synchronous: a request runs whole on one thread (pg8000, its
transaction, the thread-local trace id), so a slow statement never holds up the event
loop, and THREADS requests run at once per process, as under gthread.

Cloud Functions serves a function decorated with `functions_framework.aio.http` this
way without further configuration (functions-framework >= 3.10).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from shared import logs
from shared.errors import DomainError, NotFound
from shared.settings import get_settings
from shared.web import MAX_BODY_BYTES, HttpRequest, problem
from shared.web import Response as Answer


class Headers(Mapping[str, str]):
    """A request's headers by name in any case, a repeated one joined with ", " as a WSGI
    server joins it: two identity headers, or two content types, are then one value that
    is refused, never the first of them taken."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._by_name: dict[str, str] = {}
        for name, value in raw:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            self._by_name[key] = f"{self._by_name[key]}, {text}" if key in self._by_name else text

    def __getitem__(self, name: str) -> str:
        return self._by_name[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


class AsgiRequest:
    """A Starlette request, and its body once read, in the shape shared.web expects
    (werkzeug's names)."""

    def __init__(self, request: Request, body: bytes = b"") -> None:
        self._request = request
        self.body = body
        self.method: str = request.method
        # As werkzeug has it: "//doctors" is "/doctors".
        self.path: str = "/" + request.scope["path"].lstrip("/")
        self.headers: Mapping[str, str] = Headers(request.scope["headers"])
        content_type = self.headers.get("content-type", "")
        self.mimetype: str = content_type.split(";", 1)[0].strip().lower()
        length = self.headers.get("content-length")
        self.content_length: int | None = int(length) if length is not None and length.isdigit() else None

    @property
    def args(self) -> Any:
        return self._request.query_params

    def get_data(self, cache: bool = True, as_text: bool = False) -> bytes:
        return self.body


async def read_body(request: Request, declared: int | None) -> bytes:
    """The body, or its first MAX_BODY_BYTES + 1 bytes: enough for shared.web to refuse it
    (413) without holding a huge body in memory. Nothing when the `declared` length
    (Content-Length) is already too long."""
    if declared is not None and declared > MAX_BODY_BYTES:
        return b""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            break
    return b"".join(chunks)[: MAX_BODY_BYTES + 1]


_executor: ThreadPoolExecutor | None = None
_executor_pid = 0
_executor_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    """This process' request threads, made on its first request (gunicorn forks workers
    after import).

    Logging is set up again then: with LOG_EXECUTION_ID (which Cloud Functions may set),
    functions-framework's ASGI mode configures logging after our modules were imported,
    which drops our JSON handler and disables our loggers; every line would be lost.
    """
    global _executor, _executor_pid
    if _executor is None or _executor_pid != os.getpid():
        with _executor_lock:
            if _executor is None or _executor_pid != os.getpid():
                logs.setup(again=True)
                _executor = ThreadPoolExecutor(max_workers=get_settings().threads, thread_name_prefix="request")
                _executor_pid = os.getpid()
    return _executor


async def serve(answer: Callable[[HttpRequest], Answer], request: Request) -> Response:
    """Reads the request, runs `answer` (a Router) on a request thread, and sends its reply."""
    raw = AsgiRequest(request)
    try:
        raw.body = await read_body(request, raw.content_length)
    except ClientDisconnect:
        return Response(status_code=400)  # the client is gone; nobody reads this
    # functions-framework keeps the execution id in a context variable: carry it over.
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    data, status, headers = await loop.run_in_executor(_threads(), context.run, answer, raw)
    return Response(data, status, headers)


async def _http_exception(_: ExceptionMiddleware, request: Request, exc: Exception) -> Response:
    """Starlette's own answers (functions-framework's routes) as problem+json."""
    assert isinstance(exc, HTTPException)
    method, path = request.method, request.scope.get("path", "")
    error: DomainError
    if exc.status_code == 404:
        error = NotFound(f"no route for {method} {path}")
    elif exc.status_code == 405:
        # A method outside functions-framework's list (TRACE, CONNECT, an unknown one):
        # one no route takes (RFC 9110 15.6.2).
        error = NotImplementedMethod(f"no route takes {method}")
    else:  # none other is known to happen; answered alike all the same
        title = HTTPStatus(exc.status_code).phrase
        error = DomainError(title)
        error.status, error.title, error.type_ = exc.status_code, title, "/problems/" + title.lower().replace(" ", "-")
    data, status, headers = problem(error)
    return Response(data, status, headers)


class NotImplementedMethod(DomainError):
    status, title, type_ = 501, "Not implemented", "/problems/not-implemented"


# functions-framework's Starlette app answers some requests before a function sees them,
# in plain text: a path its `/{path:path}` route does not match (a newline in it: the
# route's `.*` stops there), /robots.txt and /favicon.ico, a method outside its list. The
# app is built after the function's module (which imports this one) is loaded, so its
# ExceptionMiddleware takes this handler.
ExceptionMiddleware.http_exception = _http_exception  # type: ignore[method-assign, assignment]
