"""local/webapp.py: the web app's files at its paths, with production's headers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from local import auth_emulator, keys
from local.gateway import Gateway, Reply, Request, render
from local.paths import OPENAPI
from local.webapp import IMMUTABLE, PRODUCTION_IDENTITY_ORIGINS, WebApp, content_security_policy, is_app_path

CONFIG = auth_emulator.web_config(9099)
INDEX = b"<!doctype html><title>Clinic</title><script type=module src=/assets/index-3f9a1c.js></script>"


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_bytes(INDEX)
    (root / "assets" / "index-3f9a1c.js").write_text("console.log('app')")
    (root / "assets" / "index-77aa00.css").write_text("body{margin:0}")
    (root / "assets" / "logo-1b2c3d.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("not the app's")
    return root


@pytest.fixture
def web(dist: Path) -> WebApp:
    return WebApp(dist, CONFIG)


def get(web: WebApp, target: str, method: str = "GET", headers: list[tuple[str, str]] | None = None) -> Reply:
    page = web.serve(method, target, headers or [])
    assert page is not None, f"{target} should be the app's"
    return Reply(*page)


def header(reply: Reply, name: str) -> str | None:
    return next((v for k, v in reply.headers if k.lower() == name.lower()), None)


def test_only_the_app_paths_are_the_apps() -> None:
    for path in ("/", "/index.html", "/config.json", "/assets/index-3f9a1c.js", "/assets/a/b.png"):
        assert is_app_path(path)
    for path in ("/doctors", "/appointments/x", "/assets", "/index.htm", "/config.json/x", "/tasks/notify", "//"):
        assert not is_app_path(path)


def test_the_entry_page_is_revalidated_and_carries_the_security_headers(web: WebApp) -> None:
    for target in ("/", "/index.html", "/?next=/%23/appointments/1"):
        reply = get(web, target)
        assert reply.status == 200 and reply.data == INDEX
        assert header(reply, "Content-Type") == "text/html; charset=utf-8"
        assert header(reply, "Cache-Control") == "no-cache"
        assert header(reply, "X-Content-Type-Options") == "nosniff"
        assert header(reply, "Referrer-Policy") == "strict-origin"
        csp = header(reply, "Content-Security-Policy")
        assert csp is not None
        assert "connect-src 'self' http://127.0.0.1:9099;" in csp
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("index-3f9a1c.js", "text/javascript; charset=utf-8"),
        ("index-77aa00.css", "text/css; charset=utf-8"),
        ("logo-1b2c3d.svg", "image/svg+xml"),
    ],
)
def test_hashed_assets_are_cached_for_a_year(web: WebApp, name: str, content_type: str) -> None:
    reply = get(web, f"/assets/{name}")
    assert reply.status == 200
    assert header(reply, "Cache-Control") == IMMUTABLE == "public, max-age=31536000, immutable"
    assert header(reply, "Content-Type") == content_type
    assert header(reply, "X-Content-Type-Options") == "nosniff"


def test_config_json_is_the_stacks_and_revalidated(dist: Path) -> None:
    (dist / "config.json").write_text('{"auth": {"apiKey": "a file in dist is not served locally"}}')
    reply = get(WebApp(dist, CONFIG), "/config.json")
    assert reply.status == 200 and json.loads(reply.data) == CONFIG
    assert header(reply, "Content-Type") == "application/json"
    assert header(reply, "Cache-Control") == "no-cache"
    assert CONFIG["auth"]["identityToolkitUrl"] == "http://127.0.0.1:9099/identitytoolkit.googleapis.com"
    assert CONFIG["auth"]["secureTokenUrl"] == "http://127.0.0.1:9099/securetoken.googleapis.com"


def test_an_unchanged_file_is_a_304(web: WebApp) -> None:
    first = get(web, "/index.html")
    etag = header(first, "ETag")
    assert etag
    again = get(web, "/index.html", headers=[("If-None-Match", f'"other", {etag}')])
    assert again.status == 304 and again.data == b""
    assert get(web, "/index.html", headers=[("If-None-Match", '"other"')]).status == 200


@pytest.mark.parametrize(
    "target",
    [
        "/assets/missing-000000.js",
        "/assets/../secret.txt",
        "/assets/%2e%2e/secret.txt",
        "/assets/..%2fsecret.txt",
        "/assets/.hidden",
        "/assets/",
        "/assets//etc/passwd",
        "/assets/a%00b.js",
    ],
)
def test_no_file_outside_the_assets_and_no_missing_one(web: WebApp, target: str) -> None:
    reply = get(web, target)
    assert reply.status == 404
    assert header(reply, "Content-Type") == "application/problem+json"
    assert b"not the app's" not in reply.data


def test_other_methods_on_app_paths_are_405(web: WebApp) -> None:
    reply = get(web, "/", method="POST")
    assert reply.status == 405 and header(reply, "Allow") == "GET, HEAD"
    assert json.loads(reply.data)["status"] == 405


def test_a_missing_build_says_how_to_build_it(tmp_path: Path) -> None:
    reply = get(WebApp(tmp_path / "nothing", CONFIG), "/")
    assert reply.status == 404
    problem = json.loads(reply.data)
    assert problem["title"] == "Web app not built" and "make web" in problem["detail"]
    # The API and the config still answer without the app.
    assert get(WebApp(tmp_path / "nothing", CONFIG), "/config.json").status == 200


def test_the_api_paths_go_past_the_app(web: WebApp) -> None:
    assert web.serve("GET", "/doctors", []) is None
    assert web.serve("POST", "/appointments", []) is None


def test_the_gateway_serves_the_app_before_routing(dist: Path, key_state: Path) -> None:
    values = {
        "slots_url": "http://slots.test",
        "book_url": "http://book.test",
        "cancel_url": "http://cancel.test",
        "jwt_issuer": "https://clinic.local/issuer",
        "jwks_uri": "file:///jwks.json",
        "jwt_audience": "clinic-local",
    }
    gateway = Gateway(
        render(OPENAPI.read_text(), values), keys.key_dir(key_state) / "jwks.json", web=WebApp(dist, CONFIG)
    )
    reply = asyncio.run(gateway.handle(Request("GET", "/", [])))
    assert reply.status == 200 and reply.data == INDEX
    # Without the app configured, "/" is just an unknown API path.
    bare = Gateway(render(OPENAPI.read_text(), values), keys.key_dir(key_state) / "jwks.json")
    assert asyncio.run(bare.handle(Request("GET", "/", []))).status == 404


def test_production_csp_allows_only_the_app_and_the_identity_provider() -> None:
    csp = content_security_policy(PRODUCTION_IDENTITY_ORIGINS)
    assert "connect-src 'self' https://identitytoolkit.googleapis.com https://securetoken.googleapis.com" in csp
    sources = {part.split()[0]: part.split()[1:] for part in csp.split("; ")}
    for directive, allowed in sources.items():
        extra = [s for s in allowed if s not in ("'self'", "'none'", "data:", *PRODUCTION_IDENTITY_ORIGINS)]
        assert extra == [], directive
