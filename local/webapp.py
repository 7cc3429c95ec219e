"""The web app's files, as the local gateway serves them beside the API.

Only `/`, `/index.html`, `/assets/*` and `/config.json` are the app's (its routes are
hash routes); every other path is the API. Headers are production's: the load
balancer's backend bucket adds the same security headers (infra/terraform/modules/web),
and the objects carry the same Cache-Control and Content-Type (tests/unit/test_web_terraform.py
holds the two to each other).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from shared.errors import MethodNotAllowed, NotFound

Headers = list[tuple[str, str]]
Page = tuple[int, Headers, bytes]

# Hashed file names never change content: cached for a year. The entry page and the
# runtime config are revalidated on every load, so a deploy shows at once.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
REFERRER_POLICY = "strict-origin"
PRODUCTION_IDENTITY_ORIGINS = ("https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


def content_security_policy(identity_origins: tuple[str, ...] | list[str]) -> str:
    """Scripts, styles and fetches from the app's own origin only, and fetches to the
    identity provider (Identity Toolkit and Secure Token; the emulator locally)."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src " + " ".join(["'self'", *identity_origins]),
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(identity_origins: tuple[str, ...] | list[str]) -> Headers:
    return [
        ("Content-Security-Policy", content_security_policy(identity_origins)),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", REFERRER_POLICY),
    ]


def identity_origins(config: dict[str, Any] | None) -> list[str]:
    """The origins of the identity endpoints an app config names, in order, once each."""
    auth = (config or {}).get("auth", {})
    origins: list[str] = []
    for key in ("identityToolkitUrl", "secureTokenUrl"):
        if auth.get(key):
            parts = urlsplit(auth[key])
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    return origins


def is_app_path(path: str) -> bool:
    return path in ("/", "/index.html", "/config.json") or path.startswith("/assets/")


def cache_control(path: str) -> str:
    return IMMUTABLE if path.startswith("/assets/") else REVALIDATE


class WebApp:
    """web/dist at the app's paths, with /config.json from the stack's configuration."""

    def __init__(self, root: Path, config: dict[str, Any] | None) -> None:
        self.root = root
        self.config = json.dumps(config, indent=2).encode() if config is not None else None
        self.headers = security_headers(identity_origins(config))

    def serve(self, method: str, target: str, request_headers: Headers) -> Page | None:
        """The app's answer for an app path; None for the API's paths."""
        path = target.split("?", 1)[0]
        if not is_app_path(path):
            return None
        if method not in ("GET", "HEAD"):
            allow = [("Allow", "GET, HEAD")]
            return self._problem(405, "Method not allowed", f"{path} is a file of the web app", allow)
        body = self._body(path)
        if isinstance(body, tuple):
            return body
        name = "index.html" if path == "/" else path
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = [
            ("Content-Type", content_type(name)),
            ("Cache-Control", cache_control(path)),
            ("ETag", etag),
            *self.headers,
        ]
        if etag in _etags(request_headers):
            return 304, headers, b""
        return 200, headers, body

    def _body(self, path: str) -> bytes | Page:
        if path == "/config.json":
            if self.config is None:
                return self._problem(404, "Not found", "this stack has no web app configuration")
            return self.config
        if path in ("/", "/index.html"):
            index = self.root / "index.html"
            if not index.is_file():
                return self._problem(
                    404,
                    "Web app not built",
                    f"{index} is missing: build the app with `make web` (`make run` and `make test` do)",
                )
            return index.read_bytes()
        file = self._asset(unquote(path[len("/assets/") :]))
        if file is None:
            return self._problem(404, "Not found", f"no file {path} in the web app")
        return file.read_bytes()

    def _asset(self, name: str) -> Path | None:
        parts = name.split("/")
        if not name or "\\" in name or "\x00" in name or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            return None
        folder = (self.root / "assets").resolve()
        file = (folder / name).resolve()
        return file if file.is_relative_to(folder) and file.is_file() else None

    def _problem(self, status: int, title: str, detail: str, extra: Headers | None = None) -> Page:
        kind = {404: NotFound.type_, 405: MethodNotAllowed.type_}[status]
        body = json.dumps({"type": kind, "title": title, "status": status, "detail": detail}).encode()
        headers = [("Content-Type", "application/problem+json"), ("Cache-Control", "no-store")]
        return status, headers + (extra or []) + self.headers, body


def _etags(headers: Headers) -> set[str]:
    values = [v for k, v in headers if k.lower() == "if-none-match"]
    return {tag.strip() for value in values for tag in value.split(",")}
