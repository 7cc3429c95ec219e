"""Browser tests: the web app in Debian's headless Chromium (Playwright for Python), against
the e2e stack, which serves the app beside the API and runs the Firebase Auth emulator.

Each test makes its own doctor and patients (users in the emulator with a role, and in the
API), so tests do not share slots or limits. axe-core comes from web/node_modules (locked).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from local import auth_emulator
from local.paths import ROOT
from local.stack import Stack
from tests.e2e.client import Api, Caller

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
# Screenshots for the README are written there only when asked (`make screenshots`), so a
# test run leaves the working tree as it was.
SCREENSHOTS = ROOT / "docs" / "screenshots" if os.environ.get("CLINIC_SCREENSHOTS") else None
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
expect.set_options(timeout=15_000)


# The browser tests' package, not the session: Playwright's sync API keeps an event loop
# running in the main thread while it is open, and every later asyncio.run() (the gateway's
# and ASGI unit tests) failed with "cannot be called from a running event loop".
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    if not AXE.exists():
        pytest.fail(f"axe-core is missing at {AXE}: run `make web` (npm ci in web/)")
    if not (ROOT / "web" / "dist" / "index.html").exists():
        pytest.fail("the web app is not built: run `make web`")
    b = playwright.chromium.launch(executable_path=CHROMIUM)
    yield b
    b.close()


@dataclass
class Person:
    """A user in the auth emulator (signs in to the app) and, for API checks, a caller
    with the same id and email (the local gateway's own tokens)."""

    caller: Caller
    email: str
    role: str

    @property
    def id(self) -> str:
        return str(self.caller.id)


class Web:
    def __init__(self, stack: Stack, api: Api, browser: Browser, app_url: str, auth_port: int) -> None:
        self.stack, self.api, self.browser, self.url, self.auth_port = stack, api, browser, app_url, auth_port
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    # -- people -----------------------------------------------------------------------

    def person(self, role: str, name: str | None = None, ident: uuid.UUID | None = None) -> Person:
        ident = ident or uuid.uuid4()
        email = f"web-{role}-{ident.hex[:12]}@example.com"
        name = name or f"{role.title()} {ident.hex[:6]}"
        auth_emulator.create_users(self.auth_port, [auth_emulator.user(ident, email, name, role)])
        return Person(Caller(self.api, role, ident, email, name), email, role)

    def patient(self, name: str | None = None) -> Person:
        return self.person("patient", name)

    def doctor(
        self, timezone: str = "Europe/Berlin", specialty: str = "Web testing", name: str | None = None
    ) -> Person:
        ident = uuid.uuid4()
        name = name or f"Dr. Web {ident.hex[:6]}"
        person = self.person("doctor", name, ident)
        response = self.api.admin().post(
            "/doctors",
            {"id": person.id, "email": person.email, "name": name, "specialty": specialty, "timezone": timezone},
        )
        assert response.status_code == 201, response.text
        return person

    def admin(self) -> Person:
        person = self.person("admin", "Front Desk")
        return person

    def publish(self, doctor: Person, day: date, start: str, end: str, minutes: int = 30) -> list[dict[str, Any]]:
        response = doctor.caller.post(
            f"/doctors/{doctor.id}/slots",
            {"date": day.isoformat(), "start": start, "end": end, "slot_minutes": minutes},
        )
        assert response.status_code == 201, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def appointments(self, patient: Person, status: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"page_size": 100} | ({"status": status} if status else {})
        response = patient.caller.get("/appointments", params=params)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    # -- browsers ---------------------------------------------------------------------

    def page(self, timezone: str = "Europe/Berlin", viewport: dict[str, int] | None = None, **options: Any) -> Page:
        context = self.browser.new_context(
            viewport=viewport or DESKTOP, timezone_id=timezone, locale="en-GB", **options
        )
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        # The app must run under the gateway's Content-Security-Policy with no exception.
        page.on(
            "console",
            lambda m: self.errors.append(m.text) if "Content Security Policy" in m.text else None,
        )
        return page

    def sign_in(self, page: Page, person: Person, path: str = "") -> None:
        page.goto(self.url + ("#" + path if path else ""))
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.get_by_label("Email").fill(person.email)
        page.get_by_label("Password").fill(auth_emulator.DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    def open_week(self, page: Page, doctor: Person, day: date, **params: str) -> None:
        query = "&".join(f"{k}={v}" for k, v in {"doctor": doctor.id, "week": day.isoformat(), **params}.items())
        page.goto(f"{self.url}#/book?{query}")
        expect(page.get_by_role("heading", name=re.compile("^Free times"))).to_be_visible()

    def axe(self, page: Page) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the page as it is now. Evaluated
        through the DevTools protocol, which the page's Content-Security-Policy does not
        govern (the app itself runs with no exception to it)."""
        page.evaluate(AXE.read_text() + "\n;0")
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        return [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]

    def screenshot(self, page: Page, name: str) -> None:
        target = SCREENSHOTS or self.stack.state / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target / f"{name}.png"), full_page=False)

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def web(stack: Stack, api: Api, browser: Browser, app_url: str, auth_port: int) -> Iterator[Web]:
    session = Web(stack, api, browser, app_url, auth_port)
    yield session
    session.close()
    assert not session.errors, f"the app threw: {session.errors}"


def next_weekday(start: date, weekday: int = 1) -> date:
    """The first day after start with that weekday (Monday 0): days the tests use."""
    day = start + timedelta(days=1)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return day
