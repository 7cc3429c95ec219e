"""A function that does nothing, for bench/booking's phase (r).

Served by functions-framework exactly as the book function is (its ASGI mode, the same
workers and threads, through shared.asgi) and sent the same requests, it measures what
the runtime alone (uvicorn, Starlette, functions-framework, reading the body and the
hop to a request thread) costs per request: the part of (b) that no change to our
code's own work can remove.
"""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared.asgi import serve
from shared.web import HttpRequest


def _nothing(request: HttpRequest) -> tuple[bytes, int, dict[str, str]]:
    return b"{}", 201, {"Content-Type": "application/json"}


@functions_framework.aio.http
async def noop(request: Request) -> Response:
    return await serve(_nothing, request)
