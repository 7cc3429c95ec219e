"""The HTTP edge every function shares: the load balancer stamp, routing errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.models import OfferAnswer
from shared.settings import get_settings
from shared.web import ApiRequest, Reply, Router

router = Router("test")


@router.route("GET", "/ping")
def ping(req: ApiRequest) -> Reply:
    return 200, {"pong": True}


@router.route("POST", "/answer")
def answer(req: ApiRequest) -> Reply:
    offer_id = req.optional_body(OfferAnswer).offer_id
    return 200, {"offer_id": None if offer_id is None else str(offer_id)}


def call(headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    body, status, _ = router(EnvironBuilder(method="GET", path="/ping", headers=headers).get_request())
    return status, json.loads(body)


@pytest.fixture
def edge_token(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("EDGE_TOKEN", "s3cret-value")
    get_settings.cache_clear()
    yield "s3cret-value"
    monkeypatch.delenv("EDGE_TOKEN")
    get_settings.cache_clear()


def test_without_an_edge_token_every_request_is_served(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_TOKEN", raising=False)
    get_settings.cache_clear()
    assert call({}) == (200, {"pong": True})


def test_with_an_edge_token_only_requests_carrying_it_are_served(edge_token: str) -> None:
    assert call({"X-Clinic-Edge": edge_token}) == (200, {"pong": True})
    for headers in ({}, {"X-Clinic-Edge": ""}, {"X-Clinic-Edge": "s3cret"}, {"X-Clinic-Edge": edge_token + "x"}):
        status, problem = call(headers)
        assert status == 403
        assert problem["type"] == "/problems/forbidden"
        assert "own domain" in str(problem["detail"])
    # Refused before routing: an unknown path tells a caller who went round nothing.
    _, status, _ = router(EnvironBuilder(method="GET", path="/nowhere").get_request())
    assert status == 403


def test_a_method_the_path_does_not_take_is_405_with_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_TOKEN", raising=False)
    get_settings.cache_clear()
    body, status, headers = router(EnvironBuilder(method="DELETE", path="/ping").get_request())
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert json.loads(body)["type"] == "/problems/method-not-allowed"


@pytest.fixture
def origins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("EDGE_TOKEN", raising=False)
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "https://app.clinic.example, http://localhost:5173")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("CORS_ALLOWED_ORIGINS")
    get_settings.cache_clear()


def send(method: str, headers: dict[str, str]) -> tuple[bytes, int, dict[str, str]]:
    return router(EnvironBuilder(method=method, path="/ping", headers=headers).get_request())


def test_a_preflight_from_an_allowed_origin_is_answered(origins: None) -> None:
    body, status, headers = send(
        "OPTIONS", {"Origin": "https://app.clinic.example", "Access-Control-Request-Method": "PATCH"}
    )
    assert (body, status) == (b"", 204)
    assert headers["Access-Control-Allow-Origin"] == "https://app.clinic.example"
    assert "PATCH" in headers["Access-Control-Allow-Methods"]
    assert {"Authorization", "Content-Type", "Idempotency-Key"} <= {
        h.strip() for h in headers["Access-Control-Allow-Headers"].split(",")
    }
    assert headers["Vary"] == "Origin"


def test_requests_from_allowed_origins_only_get_access_control_headers(origins: None) -> None:
    _, status, headers = send("GET", {"Origin": "http://localhost:5173"})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "Retry-After" in headers["Access-Control-Expose-Headers"]
    for other in ({"Origin": "https://evil.example"}, {}):
        _, status, headers = send("GET", other)
        assert status == 200 and "Access-Control-Allow-Origin" not in headers
    _, status, headers = send("OPTIONS", {"Origin": "https://evil.example"})
    assert status == 204 and "Access-Control-Allow-Origin" not in headers  # the browser refuses


def test_any_origin_with_a_star(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_TOKEN", raising=False)
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "*")
    get_settings.cache_clear()
    try:
        _, status, headers = send("GET", {"Origin": "https://anywhere.example"})
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    finally:
        monkeypatch.delenv("CORS_ALLOWED_ORIGINS")
        get_settings.cache_clear()


def test_without_origins_options_is_just_a_method_the_path_does_not_take(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_TOKEN", raising=False)
    monkeypatch.delenv("CORS_ALLOWED_ORIGINS", raising=False)
    get_settings.cache_clear()
    _, status, headers = send("OPTIONS", {"Origin": "https://app.clinic.example"})
    assert status == 405 and "Access-Control-Allow-Origin" not in headers


@pytest.fixture
def plain(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("EDGE_TOKEN", raising=False)
    monkeypatch.delenv("CORS_ALLOWED_ORIGINS", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_head_is_answered_as_get_without_the_content(plain: None) -> None:
    got, got_status, got_headers = send("GET", {})
    body, status, headers = send("HEAD", {})
    assert (status, body) == (got_status, b"")
    assert headers["Content-Type"] == got_headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(got)) and len(got) > 0
    # A problem too: its status and headers, no content.
    body, status, headers = router(EnvironBuilder(method="HEAD", path="/nowhere").get_request())
    assert (status, body, headers["Content-Type"]) == (404, b"", "application/problem+json")
    assert int(headers["Content-Length"]) > 0


def test_a_get_route_allows_head_too(plain: None) -> None:
    _, status, headers = router(EnvironBuilder(method="POST", path="/ping").get_request())
    assert status == 405 and headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/ping\n", "/ping/\n", "/ping\r\n", "/ping\n/"])
def test_a_line_break_after_a_path_is_another_path(plain: None, path: str) -> None:
    # A regular expression's `$` matches before a final newline: "/ping\n" was "/ping".
    # (werkzeug's builder would strip the newline: the path is set as a server gives it.)
    environ = EnvironBuilder(method="GET", path="/").get_environ()
    environ["PATH_INFO"] = path
    body, status, headers = router(Request(environ))
    assert status == 404 and headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["type"] == "/problems/not-found"


def test_an_optional_body_may_be_left_out_and_is_checked_when_sent(plain: None) -> None:
    offer = "0b0c6d51-8a6b-4a52-9a55-0d7bd2c9f2a1"

    def post(data: str | None, content_type: str | None = "application/json") -> tuple[int, dict[str, object]]:
        request = EnvironBuilder(method="POST", path="/answer", data=data, content_type=content_type).get_request()
        body, status, _ = router(request)
        return status, json.loads(body)

    assert post(None, None) == (200, {"offer_id": None})  # as a client from before the body
    assert post("", None) == (200, {"offer_id": None})
    assert post("{}") == (200, {"offer_id": None})
    assert post(json.dumps({"offer_id": offer})) == (200, {"offer_id": offer})
    for data, content_type, status in [
        (json.dumps({"offer_id": "nope"}), "application/json", 422),
        (json.dumps({"offer": offer}), "application/json", 422),  # extra fields are refused
        (json.dumps({"offer_id": offer}), "text/plain", 415),
        ("{", "application/json", 400),
    ]:
        assert post(data, content_type)[0] == status, data
