"""shared.asgi: a Router served under functions-framework's ASGI mode.

Requests are built as uvicorn hands them over (an ASGI scope and its receive
channel), without a socket; the running functions are exercised over HTTP by
tests/e2e.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from shared.asgi import AsgiRequest, read_body, serve
from shared.settings import get_settings
from shared.web import MAX_BODY_BYTES, ApiRequest, HttpRequest, Reply, Router


class Note(BaseModel):
    text: str


router = Router("test")


@router.route("POST", "/notes")
def add_note(req: ApiRequest) -> Reply:
    note = req.body(Note)
    return 201, {"text": note.text, "q": req.raw.args.getlist("q"), "thread": threading.current_thread().name}


@pytest.fixture(autouse=True)
def no_edge_token(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("EDGE_TOKEN", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def request(
    method: str = "POST",
    path: str = "/notes",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    chunks: list[bytes] | None = None,
    disconnect: bool = False,
) -> Request:
    """A request as uvicorn passes it: the body arrives in `chunks`, or the client leaves."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks or []) - 1}
        for i, chunk in enumerate(chunks or [b""])
    ]
    if disconnect:
        messages = [{**messages[0], "more_body": True}, {"type": "http.disconnect"}]
    received: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        message = messages[len(received)] if len(received) < len(messages) else {"type": "http.disconnect"}
        received.append(message)
        return message

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": headers if headers is not None else [(b"content-type", b"application/json")],
        "root_path": "",
        "scheme": "http",
        "server": ("127.0.0.1", 8080),
    }
    return Request(scope, receive)


def answer(req: Request) -> Response:
    return asyncio.run(serve(router, req))


def test_a_request_runs_the_router_on_a_request_thread_and_its_reply_is_sent_as_is() -> None:
    response = answer(
        request(query=b"q=a&q=b", chunks=[b'{"te', b'xt": "hello"}'], headers=[(b"content-type", b"application/json")])
    )
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    body = json.loads(response.body)
    assert body["text"] == "hello" and body["q"] == ["a", "b"]
    assert body["thread"].startswith("request")  # not the event loop's thread


def test_problems_keep_their_status_type_and_headers() -> None:
    response = answer(request(chunks=[b"{not json"]))
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
    assert json.loads(response.body)["type"] == "/problems/bad-request"
    response = answer(request(method="GET"))
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    response = answer(request(headers=[(b"content-type", b"text/plain")], chunks=[b'{"text": "x"}']))
    assert response.status_code == 415


@pytest.mark.parametrize("declared", [True, False])
def test_a_body_over_the_limit_is_413_and_is_not_read_whole(declared: bool) -> None:
    chunk = b" " * 16384
    chunks = [chunk] * (MAX_BODY_BYTES // len(chunk) * 4)
    headers = [(b"content-type", b"application/json")]
    if declared:
        headers.append((b"content-length", str(len(chunk) * len(chunks)).encode()))
    req = request(headers=headers, chunks=chunks)
    body = asyncio.run(read_body(req, AsgiRequest(req).content_length))
    assert len(body) == (0 if declared else MAX_BODY_BYTES + 1)
    response = answer(request(headers=headers, chunks=chunks))
    assert response.status_code == 413
    assert json.loads(response.body)["type"] == "/problems/payload-too-large"


def test_a_body_at_the_limit_is_read_whole() -> None:
    text = "x" * (MAX_BODY_BYTES - len('{"text": ""}'))
    data = json.dumps({"text": text}).encode()
    assert len(data) == MAX_BODY_BYTES
    response = answer(request(chunks=[data[:1000], data[1000:]]))
    assert response.status_code == 201 and json.loads(response.body)["text"] == text


def test_a_client_gone_before_its_body_arrived_runs_nothing() -> None:
    calls: list[HttpRequest] = []

    def recorder(raw: HttpRequest) -> tuple[bytes, int, dict[str, str]]:
        calls.append(raw)
        return b"", 200, {}

    response = asyncio.run(serve(recorder, request(chunks=[b'{"text"'], disconnect=True)))
    assert response.status_code == 400 and calls == []


def test_the_request_reads_as_werkzeug_names_it() -> None:
    raw = AsgiRequest(
        request(
            path="/doctors/x/slots",
            query=b"from=2026-01-01&to=2026-01-02",
            headers=[
                (b"content-type", b"Application/JSON; charset=utf-8"),
                (b"content-length", b"12"),
                (b"x-apigateway-api-userinfo", b"abc"),
            ],
        ),
        b'{"text": ""}',
    )
    assert raw.method == "POST" and raw.path == "/doctors/x/slots"
    assert raw.mimetype == "application/json" and raw.content_length == 12
    assert raw.headers.get("X-Apigateway-Api-Userinfo") == "abc"
    assert dict(raw.args) == {"from": "2026-01-01", "to": "2026-01-02"}
    assert raw.get_data(cache=False) == b'{"text": ""}'
    for length in (b"-1", b"12abc", b""):
        odd = AsgiRequest(request(headers=[(b"content-length", length)]), b"")
        assert odd.content_length is None and odd.mimetype == ""


def test_context_variables_of_the_request_reach_its_thread() -> None:
    # functions-framework keeps its execution id in one.
    execution = contextvars.ContextVar[str]("execution")
    seen: list[str] = []

    def reader(raw: HttpRequest) -> tuple[bytes, int, dict[str, str]]:
        seen.append(execution.get("unset"))
        return b"", 204, {}

    async def main() -> None:
        execution.set("abc123")
        await serve(reader, request(method="GET"))

    asyncio.run(main())
    assert seen == ["abc123"]


def test_a_repeated_header_is_one_joined_value_never_the_first_alone() -> None:
    raw = AsgiRequest(
        request(headers=[(b"x-apigateway-api-userinfo", b"e30"), (b"X-Apigateway-Api-Userinfo", b"e31")]), b""
    )
    assert raw.headers.get("x-apigateway-api-userinfo") == "e30, e31"
    assert dict(raw.headers) == {"x-apigateway-api-userinfo": "e30, e31"}
    twice = [(b"content-type", b"application/json"), (b"content-type", b"application/json")]
    assert answer(request(headers=twice, chunks=[b'{"text": "x"}'])).status_code == 415


def test_extra_leading_slashes_are_one_as_werkzeug_has_it() -> None:
    assert AsgiRequest(request(path="//notes"), b"").path == "/notes"
    assert answer(request(path="//notes", chunks=[b'{"text": "x"}'])).status_code == 201


def test_logging_is_ours_again_after_functions_framework_configured_it(capfd: pytest.CaptureFixture[str]) -> None:
    import logging.config

    from shared import logs

    log = logs.get("clinic.test-asgi")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    loggers = [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    disabled = [lg.disabled for lg in loggers]
    try:
        # What functions-framework runs in ASGI mode with LOG_EXECUTION_ID, after our import.
        logging.config.dictConfig({"version": 1, "handlers": {}, "root": {"level": "WARNING", "handlers": []}})
        assert log.disabled and logging.getLogger("asyncio").disabled
        logs.setup(again=True)
        assert not logging.getLogger("asyncio").disabled  # it reports event-loop errors
        log.info("back", extra={"fields": {"k": 1}})
    finally:
        root.handlers, root.level = handlers, level
        for lg, was in zip(loggers, disabled, strict=True):
            lg.disabled = was
    # Written to the process' own stdout (fd 1), not to whatever sys.stdout was then.
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    assert {"severity": "INFO", "message": "back", "logger": "clinic.test-asgi", "k": 1} in lines


def asgi_call(app: Any, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """One request through a whole ASGI app, as uvicorn makes it (the path percent-decoded)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {**request(method, path, headers=[]).scope, "http_version": "1.1", "asgi": {"version": "3.0"}}
    asyncio.run(app(scope, receive, send))
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture(scope="module")
def functions_apps() -> dict[str, Any]:
    """The book and slots functions as functions-framework's ASGI mode serves them."""
    from functions_framework.aio import create_asgi_app

    from local.paths import ROOT

    return {
        name: create_asgi_app(target=name, source=str(ROOT / "functions" / name / "main.py"))
        for name in ("slots", "book")
    }


APPOINTMENT = "30000000-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("function", "method", "path", "status"),
    [
        # A line break stops the `.*` of functions-framework's catch-all route: Starlette
        # itself answered these, in plain text.
        ("slots", "GET", "/doctors/\n\n", 404),
        ("book", "GET", f"/appointments/{APPOINTMENT}\r\nX-Injected: 1", 404),
        ("book", "PATCH", f"/appointments/{APPOINTMENT}\r\n", 404),
        ("slots", "GET", "/robots.txt", 404),
        ("slots", "GET", "/favicon.ico", 404),
        # Methods outside functions-framework's list.
        ("slots", "TRACE", "/doctors", 501),
        ("slots", "BREW", "/doctors", 501),
        # These reach our router: a trailing newline is not the route before it.
        ("slots", "GET", "/doctors\n", 404),
        ("slots", "POST", "/doctors/\n", 404),
    ],
)
def test_every_answer_of_a_function_is_problem_json(
    functions_apps: dict[str, Any], function: str, method: str, path: str, status: int
) -> None:
    got, headers, body = asgi_call(functions_apps[function], method, path)
    assert (got, headers["content-type"]) == (status, "application/problem+json"), body
    problem = json.loads(body)
    assert problem["status"] == status and problem["type"].startswith("/problems/")
