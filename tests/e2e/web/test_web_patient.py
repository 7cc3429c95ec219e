"""A patient in the browser: books, sees the confirmation and the email's link, loses a race
politely, cancels and moves, meets a limit, books on a phone and with the keyboard alone, and
a dropped connection followed by a retry makes one appointment."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

from playwright.sync_api import Locator, Page, Route, expect

from tests.e2e.test_notifications import wait_for_mail
from tests.e2e.web.conftest import PHONE, Web, next_weekday


def slot_button(page: Page, time: str) -> Locator:
    return page.locator("button.slot", has_text=re.compile(f"^{time}"))


def choose_and_book(page: Page, time: str, reason: str | None = None) -> None:
    slot_button(page, time).click()
    if reason is not None:
        page.get_by_label("Reason for the visit (optional)").fill(reason)
    page.get_by_role("button", name="Book this time").click()


def appointment_id(page: Page) -> str:
    expect(page).to_have_url(re.compile(r"#/appointments/[0-9a-f-]{36}"))
    match = re.search(r"#/appointments/([0-9a-f-]{36})", page.url)
    assert match
    return match.group(1)


def test_a_patient_books_sees_the_confirmation_and_the_emails_link_opens_it(web: Web) -> None:
    doctor = web.doctor(specialty="Cardiology (web)", name="Dr. Emma Link")
    day = next_weekday(date.today(), 2)
    web.publish(doctor, day, "09:00", "12:00")
    for later in (1, 2):  # afternoons around it, so the week (and its screenshot) has more than one day
        web.publish(doctor, day + timedelta(days=later), "13:00", "17:00")
    patient = web.patient("Lena Vogel")
    page = web.page()
    web.sign_in(page, patient)
    # Specialty, then doctor, then the week.
    page.get_by_label("Specialty").select_option("Cardiology (web)")
    page.get_by_label("Doctor").select_option(label="Dr. Emma Link (Cardiology (web))")
    expect(page.get_by_role("heading", name=re.compile("^Free times"))).to_be_visible()
    if (day - date.today()).days >= 7:
        page.get_by_role("link", name="Next week →").click()
    expect(slot_button(page, "09:00")).to_have_count(1)
    web.screenshot(page, "booking-desktop")
    choose_and_book(page, "09:30", "Chest pain when running")
    expect(page.get_by_role("status").filter(has_text="Your appointment is booked")).to_be_visible()
    booked = appointment_id(page)
    expect(page.get_by_text("Reason: Chest pain when running")).to_be_visible()
    [mine] = web.appointments(patient)
    assert mine["id"] == booked and mine["status"] == "BOOKED"

    [mail] = wait_for_mail(web.stack, booked, "CONFIRMATION")
    body = mail.get_body(("plain",))
    assert body is not None
    link = re.search(r"Manage this appointment: (\S+)", body.get_content())
    assert link, body.get_content()
    assert link.group(1) == f"{web.url.rstrip('/')}/#/appointments/{booked}"
    # The link in a browser that is not signed in: sign-in first, then that appointment.
    fresh = web.page()
    fresh.goto(link.group(1))
    expect(fresh.get_by_text("Sign in to see your appointment.")).to_be_visible()
    fresh.get_by_label("Email").fill(patient.email)
    fresh.get_by_label("Password").fill("clinic-demo")
    fresh.get_by_role("button", name="Sign in").click()
    expect(fresh.get_by_role("heading", name="Appointment")).to_be_visible()
    expect(fresh).to_have_url(re.compile(f"#/appointments/{booked}$"))
    expect(fresh.get_by_text("Dr. Emma Link")).to_be_visible()
    expect(fresh.get_by_text("Booked", exact=True)).to_be_visible()


def test_two_browsers_race_for_one_slot_one_books_the_other_is_told_it_was_just_taken(web: Web) -> None:
    doctor = web.doctor()
    day = next_weekday(date.today(), 3)
    web.publish(doctor, day, "10:00", "11:00")
    first, second = web.patient(), web.patient()
    pages = []
    for patient in (first, second):
        page = web.page()
        web.sign_in(page, patient)
        web.open_week(page, doctor, day)
        page.locator("button.slot", has_text=re.compile("^10:00")).click()
        pages.append(page)
    # Both press Book at once: the requests are in flight together.
    for page in pages:
        page.get_by_role("button", name="Book this time").click(no_wait_after=True)
    for page in pages:
        expect(
            page.get_by_text("Your appointment is booked").or_(page.get_by_text("just taken by someone else").first)
        ).to_be_visible()
    booked = [p for p in pages if p.get_by_text("Your appointment is booked").count()]
    lost = [p for p in pages if p.get_by_text("just taken by someone else").count()]
    assert len(booked) == 1 and len(lost) == 1
    loser = lost[0]
    expect(loser.get_by_role("alert")).to_contain_text("just taken by someone else")
    # The list is refreshed: the taken slot is gone, the other one is still offered.
    expect(loser.locator("button.slot", has_text=re.compile("^10:00"))).to_have_count(0)
    expect(loser.locator("button.slot", has_text=re.compile("^10:30"))).to_have_count(1)
    holders = [p for p in (first, second) if web.appointments(p, "BOOKED")]
    assert len(holders) == 1


def test_cancel_and_move_from_my_appointments_show_in_the_list_and_the_emails(web: Web) -> None:
    doctor = web.doctor(name="Dr. Move Cancel")
    day = next_weekday(date.today(), 4)
    web.publish(doctor, day, "13:00", "15:00")
    patient = web.patient()
    page = web.page()
    web.sign_in(page, patient)
    ids = []
    for time in ("13:00", "14:00"):
        web.open_week(page, doctor, day)
        choose_and_book(page, time)
        ids.append(appointment_id(page))
    to_cancel, to_move = ids
    page.get_by_role("link", name="My appointments").first.click()
    upcoming = page.locator("h2:text('Upcoming') + ul")
    expect(upcoming.locator("article")).to_have_count(2)

    cancel_card = page.locator("article", has=page.locator(f"a[href='#/appointments/{to_cancel}']"))
    cancel_card.get_by_role("button", name="Cancel").click()
    cancel_card.get_by_role("button", name="Yes, cancel it").click()
    expect(upcoming.locator("article")).to_have_count(1)
    past = page.locator("h2:text('Past and cancelled') + ul")
    expect(past.locator("article")).to_contain_text("Cancelled")

    move_card = page.locator("article", has=page.locator(f"a[href='#/appointments/{to_move}']"))
    move_card.get_by_role("link", name="Move").click()
    expect(page.get_by_role("heading", name="Move an appointment")).to_be_visible()
    if (day - date.today()).days >= 7:
        page.get_by_label("From").fill(day.isoformat())
    page.locator("button.slot", has_text=re.compile("^14:30")).click()
    page.get_by_role("button", name="Move here").click()
    expect(page.get_by_text("The appointment was moved to the new time.")).to_be_visible()
    expect(page.get_by_role("heading", level=2)).to_contain_text("14:30")
    page.get_by_role("link", name="My appointments").first.click()
    expect(upcoming.locator("article")).to_have_count(1)
    expect(upcoming).to_contain_text("14:30")

    assert wait_for_mail(web.stack, to_cancel, "CANCELLATION")
    [moved] = wait_for_mail(web.stack, to_move, "RESCHEDULED")
    text = moved.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "14:30" in text and "Was:" in text and f"#/appointments/{to_move}" in text
    statuses = {a["id"]: a["status"] for a in web.appointments(patient)}
    assert statuses == {to_cancel: "CANCELLED", to_move: "BOOKED"}


def test_a_limit_shows_the_message_and_the_wait(web: Web) -> None:
    """60 changes in the hour (the e2e stack's MAX_CHANGES_PER_HOUR) made through the API,
    then one more in the browser: the message says how long to wait (Retry-After)."""
    doctor = web.doctor()
    day = next_weekday(date.today() + timedelta(days=7), 1)
    slots = web.publish(doctor, day, "08:00", "09:00")
    patient = web.patient()
    for _ in range(30):
        made = patient.caller.post("/appointments", {"slot_id": slots[0]["id"]})
        assert made.status_code == 201, made.text
        assert patient.caller.patch(f"/appointments/{made.json()['id']}", {"status": "CANCELLED"}).status_code == 200
    page = web.page()
    web.sign_in(page, patient)
    web.open_week(page, doctor, day)
    choose_and_book(page, "08:30")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("many changes in the last hour")
    expect(alert).to_contain_text(re.compile(r"try again in (\d+ minutes|a minute|\d+ seconds)"))
    assert not web.appointments(patient, "BOOKED")


def test_a_phone_books_the_whole_way_without_scrolling_sideways(web: Web) -> None:
    doctor = web.doctor(specialty="Dermatology (phone)", name="Dr. Phone Small")
    day = next_weekday(date.today(), 1)
    web.publish(doctor, day, "09:00", "17:00")
    patient = web.patient()
    page = web.page(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)

    def no_sideways_scroll() -> None:
        width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1], f"{page.url}: content {width[0]}px wide in a {width[1]}px screen"

    web.sign_in(page, patient)
    no_sideways_scroll()
    page.get_by_label("Specialty").select_option("Dermatology (phone)")
    page.get_by_label("Doctor").select_option(label="Dr. Phone Small (Dermatology (phone))")
    if (day - date.today()).days >= 7:
        page.get_by_role("link", name="Next week →").tap()
    page.locator("button.slot").first.wait_for()
    no_sideways_scroll()
    web.screenshot(page, "booking-phone")
    page.locator("button.slot", has_text=re.compile("^11:00")).tap()
    page.get_by_label("Reason for the visit (optional)").fill("Rash")
    no_sideways_scroll()
    page.get_by_role("button", name="Book this time").tap()
    expect(page.get_by_text("Your appointment is booked")).to_be_visible()
    no_sideways_scroll()
    page.get_by_role("link", name="My appointments").first.tap()
    expect(page.locator("article")).to_have_count(1)
    no_sideways_scroll()


def test_booking_with_the_keyboard_alone(web: Web) -> None:
    specialty = f"Keyboard {uuid.uuid4().hex[:6]}"
    doctor = web.doctor(specialty=specialty, name="Dr. Key Board")
    day = next_weekday(date.today(), 1)
    web.publish(doctor, day, "15:00", "16:00")
    patient = web.patient()
    page = web.page()
    web.sign_in(page, patient)
    keys = page.keyboard

    def tab_to(check: str, limit: int = 60) -> None:
        for _ in range(limit):
            keys.press("Tab")
            if page.evaluate(check):
                return
        raise AssertionError(f"Tab never reached {check}")

    # A closed select takes typed letters: the first option they begin.
    tab_to("document.activeElement.closest('label')?.textContent.startsWith('Specialty')")
    keys.type(specialty)
    expect(page.get_by_label("Specialty")).to_have_value(specialty)
    expect(page.get_by_label("Doctor").locator("option")).to_have_count(2)
    tab_to("document.activeElement.closest('label')?.textContent.startsWith('Doctor')")
    keys.type("Dr. Key")
    expect(page.get_by_label("Doctor")).to_have_value(doctor.id)
    if (day - date.today()).days >= 7:
        tab_to("document.activeElement.textContent === 'Next week →'")
        keys.press("Enter")
    expect(page.locator("button.slot")).to_have_count(2)
    tab_to("document.activeElement.classList.contains('slot')")
    keys.press("Tab")  # the second slot, 15:30
    keys.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("15:30.*Dr. Key Board"))).to_be_focused()
    keys.press("Tab")
    keys.type("Typed, not clicked")
    keys.press("Tab")
    keys.press("Enter")
    expect(page.get_by_text("Your appointment is booked")).to_be_visible()
    [mine] = web.appointments(patient)
    assert mine["reason"] == "Typed, not clicked"
    expect(page.get_by_text("Reason: Typed, not clicked")).to_be_visible()


def test_a_dropped_connection_then_a_retry_makes_exactly_one_appointment(web: Web) -> None:
    doctor = web.doctor()
    day = next_weekday(date.today(), 2)
    web.publish(doctor, day, "16:00", "17:00")
    patient = web.patient()
    page = web.page()
    web.sign_in(page, patient)
    web.open_week(page, doctor, day)
    keys: list[str | None] = []

    def lose_the_answer(route: Route) -> None:
        keys.append(route.request.headers.get("idempotency-key"))
        route.fetch()  # the request reaches the server, which books...
        route.abort("connectionreset")  # ...and the answer is lost on the way back

    page.route(
        "**/appointments", lambda route: lose_the_answer(route) if route.request.method == "POST" else route.continue_()
    )
    choose_and_book(page, "16:00")
    expect(page.get_by_role("alert")).to_contain_text("could not reach the clinic")
    assert len(web.appointments(patient, "BOOKED")) == 1  # it was made
    page.unroute("**/appointments")

    sent: list[str | None] = []
    page.on("request", lambda r: sent.append(r.headers.get("idempotency-key")) if r.method == "POST" else None)
    page.get_by_role("button", name="Book this time").click()  # the patient tries again
    expect(page.get_by_text("Your appointment is booked")).to_be_visible()
    assert keys[0] and sent == keys, (keys, sent)
    assert len(web.appointments(patient, "BOOKED")) == 1
