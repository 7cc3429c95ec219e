"""axe-core, injected into every page of the app (each role's, with content on it): no
serious or critical violation. And every action slower than a blink says it is working."""

from __future__ import annotations

from datetime import date

from playwright.sync_api import Page, expect

from tests.e2e.booking_support import register
from tests.e2e.web.conftest import PHONE, Web, next_weekday


def assert_accessible(web: Web, page: Page, name: str) -> None:
    violations = web.axe(page)
    assert not violations, f"{name}: {violations}"


def test_no_serious_accessibility_violation_on_any_page(web: Web) -> None:
    doctor = web.doctor(name="Dr. Axe")
    day = next_weekday(date.today(), 2)
    web.publish(doctor, day, "09:00", "10:00")
    patient = web.patient("Axe Patient")
    register(patient.caller)
    for viewport in (None, PHONE):
        page = web.page(viewport=viewport)
        page.goto(web.url)
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        assert_accessible(web, page, "sign-in")
        page.get_by_role("button", name="Sign in").click()  # empty: the browser's own check
        page.get_by_label("Email").fill(patient.email)
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
        assert_accessible(web, page, "sign-in, refused")

        web.sign_in(page, patient)
        assert_accessible(web, page, "book, nothing chosen")
        web.open_week(page, doctor, day)
        page.locator("button.slot").first.click()
        assert_accessible(web, page, "book, a slot chosen")
        page.get_by_role("button", name="Book this time").click()
        expect(page.get_by_text("Your appointment is booked")).to_be_visible()
        assert_accessible(web, page, "appointment")
        page.get_by_role("link", name="My appointments").first.click()
        expect(page.locator("article").first).to_be_visible()
        page.locator("article").first.get_by_role("button", name="Cancel").click()
        assert_accessible(web, page, "my appointments, confirming a cancel")
        page.goto(web.url + "#/nowhere")
        assert_accessible(web, page, "not found")

    doctor_page = web.page()
    web.sign_in(doctor_page, doctor, f"/doctor?week={day.isoformat()}")
    expect(doctor_page.locator("article").first).to_be_visible()
    assert_accessible(web, doctor_page, "doctor")

    desk = web.page()
    web.sign_in(desk, web.admin(), f"/desk?q=Axe&patient={patient.id}")
    expect(desk.get_by_role("link", name="Axe Patient", exact=True)).to_be_visible()
    expect(desk.locator("article").first).to_be_visible()
    assert_accessible(web, desk, "front desk")


def test_a_slow_answer_shows_that_the_app_is_working(web: Web) -> None:
    doctor = web.doctor()
    day = next_weekday(date.today(), 1)
    web.publish(doctor, day, "09:00", "10:00")
    patient = web.patient()
    page = web.page()
    # The free slots answer 1.5 s late (the delay is in the page, so the test keeps running).
    page.add_init_script(
        "const f = window.fetch; window.fetch = (u, o) => String(u).includes('/slots?')"
        " ? new Promise((r) => setTimeout(r, 1500)).then(() => f(u, o)) : f(u, o);"
    )
    web.sign_in(page, patient)
    page.goto(f"{web.url}#/book?doctor={doctor.id}&week={day.isoformat()}")
    expect(page.get_by_role("status").filter(has_text="Working…")).to_be_visible(timeout=1400)
    expect(page.locator("button.slot").first).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Working…")).to_have_count(0)


def test_the_axe_check_finds_a_planted_violation(web: Web) -> None:
    """So that an empty list above means axe ran and found nothing, not that it never ran."""
    page = web.page()
    page.goto(web.url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.evaluate(
        "document.querySelector('main').append(Object.assign(document.createElement('img'), {src: '/x.png'}))"
    )
    assert [v["id"] for v in web.axe(page)] == ["image-alt"]
