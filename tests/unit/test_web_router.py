"""The HTTP edge every function shares: the load balancer stamp, routing errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from werkzeug.test import EnvironBuilder

from shared.settings import get_settings
from shared.web import ApiRequest, Reply, Router

router = Router("test")


@router.route("GET", "/ping")
def ping(req: ApiRequest) -> Reply:
    return 200, {"pong": True}


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
    assert status == 405 and headers["Allow"] == "GET"
    assert json.loads(body)["type"] == "/problems/method-not-allowed"
