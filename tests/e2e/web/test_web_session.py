"""The sign-in session: an ID token about to expire is refreshed with the refresh token
(securetoken, as in production) without asking the user; a token the API refuses (401)
signs the user out and brings them back where they were after signing in again."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.e2e.web.conftest import Web


def stored(page: object) -> dict[str, object]:
    text = page.evaluate("localStorage.getItem('clinic.session')")  # type: ignore[attr-defined]
    return json.loads(text) if text else {}


def test_an_expiring_token_is_refreshed_without_asking(web: Web) -> None:
    patient = web.patient("Refresh Me")
    page = web.page()
    web.sign_in(page, patient)
    before = stored(page)
    page.evaluate(
        "const s = JSON.parse(localStorage.getItem('clinic.session')); s.expiresAt = 0;"
        " localStorage.setItem('clinic.session', JSON.stringify(s))"
    )
    with page.expect_request(re.compile(r".*/securetoken\.googleapis\.com/v1/token\?key=.*")):
        page.goto(web.url + "#/appointments")
        page.reload()  # the app reads the session from storage when it starts
        expect(page.get_by_role("heading", name="My appointments")).to_be_visible()
    expect(page.get_by_text("No upcoming appointments.")).to_be_visible()
    # A new expiry (the emulator's unsigned token may be the same text within one second).
    assert int(stored(page)["expiresAt"]) > 0  # type: ignore[call-overload]
    assert before["refreshToken"]


def test_a_refused_token_signs_out_and_sign_in_returns_to_the_page(web: Web) -> None:
    patient = web.patient()
    page = web.page()
    web.sign_in(page, patient)
    page.evaluate(
        "const s = JSON.parse(localStorage.getItem('clinic.session')); s.idToken = 'x.eyJzdWIiOiJ4In0.y';"
        " localStorage.setItem('clinic.session', JSON.stringify(s))"
    )
    page.goto(web.url + "#/appointments")
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(patient.email)
    page.get_by_label("Password").fill("clinic-demo")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="My appointments")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert stored(page) == {}
