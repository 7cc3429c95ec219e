"""The waitlist in the browser: a patient who finds a doctor's week full joins the
waitlist there; when a time frees, My appointments shows it held for them with the time
left, ticking down, and one click books it. (The e2e stack holds an offer 15 s.)"""

from __future__ import annotations

import re
from datetime import date, timedelta

from playwright.sync_api import expect

from tests.e2e.web.conftest import Web


def test_a_full_week_offers_the_waitlist_and_a_freed_time_is_accepted_in_one_click(web: Web) -> None:
    doctor = web.doctor(name="Dr. Wait Listed")
    day = date.today() + timedelta(days=3)
    [slot] = web.publish(doctor, day, "10:00", "10:30")
    holder = web.patient()
    booked = holder.caller.post("/appointments", {"slot_id": slot["id"]})
    assert booked.status_code == 201, booked.text
    patient = web.patient("Wanda Waiting")
    page = web.page()
    web.sign_in(page, patient)
    web.open_week(page, doctor, day)
    expect(page.get_by_text("No free times this week. Try the next week.")).to_be_visible()
    assert web.axe(page) == []
    page.get_by_role("button", name="Join the waitlist").click()
    expect(page.get_by_text(re.compile("You are on Dr. Wait Listed's waitlist for this week"))).to_be_visible()
    [entry] = patient.caller.get("/waitlist").json()["items"]
    assert entry["doctor_id"] == doctor.id and entry["status"] == "WAITING"

    page.get_by_role("navigation", name="Main").get_by_role("link", name="My appointments").click()
    expect(page.get_by_role("heading", name="On the waitlist")).to_be_visible()
    expect(page.get_by_role("button", name="Leave the waitlist")).to_be_visible()
    # The time frees: held for the patient, shown with the time left, ticking.
    cancelled = holder.caller.patch(f"/appointments/{booked.json()['id']}", {"status": "CANCELLED"})
    assert cancelled.status_code == 200, cancelled.text
    page.reload()
    expect(page.get_by_role("heading", name="Held for you")).to_be_visible()
    timer = page.get_by_role("timer")
    expect(timer).to_contain_text("Held for you for another 0:")
    first = timer.inner_text()
    expect(timer).not_to_have_text(first, timeout=3000)
    assert web.axe(page) == []
    page.get_by_role("button", name="Accept and book").click()
    expect(page).to_have_url(re.compile(r"#/appointments/[0-9a-f-]{36}"))
    expect(page.get_by_role("status").filter(has_text="Your appointment is booked")).to_be_visible()
    [mine] = web.appointments(patient)
    assert mine["slot_id"] == slot["id"] and mine["status"] == "BOOKED"


def test_a_slot_held_for_someone_else_is_not_shown_and_booking_it_says_so(web: Web) -> None:
    doctor = web.doctor(name="Dr. Held Slot")
    day = date.today() + timedelta(days=3)
    slots = web.publish(doctor, day, "10:00", "11:00")
    holder, waiting = web.patient(), web.patient()
    booked = holder.caller.post("/appointments", {"slot_id": slots[0]["id"]})
    assert booked.status_code == 201
    joined = waiting.caller.post("/waitlist", {"doctor_id": doctor.id, "from": str(day), "to": str(day)})
    assert joined.status_code == 201, joined.text
    assert holder.caller.patch(f"/appointments/{booked.json()['id']}", {"status": "CANCELLED"}).status_code == 200
    page = web.page()
    web.sign_in(page, web.patient())
    web.open_week(page, doctor, day)
    # Only the other slot is free: the held one is not listed.
    expect(page.locator("button.slot")).to_have_count(1)
