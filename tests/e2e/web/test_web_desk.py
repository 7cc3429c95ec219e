"""The front desk in the browser: finds a patient, books for them, moves and cancels for
them; adds a doctor who then shows in the booking page's list."""

from __future__ import annotations

import re
from datetime import date

from playwright.sync_api import expect

from tests.e2e.booking_support import register
from tests.e2e.web.conftest import Web, next_weekday


def test_the_front_desk_finds_a_patient_and_books_moves_and_cancels_for_them(web: Web) -> None:
    doctor = web.doctor(name="Dr. Desk Booked")
    day = next_weekday(date.today(), 4)
    web.publish(doctor, day, "11:00", "12:30")
    patient = web.patient("Walter Findme")
    register(patient.caller)  # a patient the clinic knows (a profile), who never used the app
    desk = web.admin()
    page = web.page()
    web.sign_in(page, desk)
    expect(page.get_by_role("heading", name="Front desk")).to_be_visible()
    page.get_by_label("Name or email").fill("findme")
    page.get_by_role("button", name="Find").click()
    page.get_by_role("link", name="Walter Findme").click()
    expect(page.get_by_role("heading", name="Walter Findme")).to_be_visible()
    page.get_by_role("link", name="Book for Walter Findme").click()
    expect(page.get_by_text("Booking for Walter Findme")).to_be_visible()
    page.get_by_label("Doctor").select_option(doctor.id)
    if (day - date.today()).days >= 7:
        page.get_by_role("link", name="Next week →").click()
    page.locator("button.slot", has_text=re.compile("^11:00")).click()
    page.get_by_label("Reason for the visit (optional)").fill("Booked by phone")
    page.get_by_role("button", name="Book this time").click()
    expect(page.get_by_text("Your appointment is booked")).to_be_visible()
    expect(page.get_by_text("Patient: Walter Findme")).to_be_visible()
    [booked] = web.appointments(patient)
    assert booked["reason"] == "Booked by phone" and booked["status"] == "BOOKED"

    page.get_by_role("link", name="Back to the front desk").click()
    card = page.locator("article")
    expect(card).to_have_count(1)
    card.get_by_role("link", name="Move").click()
    expect(page.get_by_role("heading", name="Move an appointment")).to_be_visible()
    if (day - date.today()).days >= 7:
        page.get_by_role("link", name="Next week →").click()
    page.locator("button.slot", has_text=re.compile("^12:00")).click()
    page.get_by_role("button", name="Move here").click()
    expect(page.get_by_text("The appointment was moved")).to_be_visible()
    page.get_by_role("link", name="Back to the front desk").click()
    card = page.locator("article")
    expect(card).to_contain_text("12:00")
    card.get_by_role("button", name="Cancel").click()
    card.get_by_role("button", name="Yes, cancel it").click()
    expect(page.locator("h3:text('Past and cancelled') + ul article")).to_contain_text("Cancelled")
    [after] = web.appointments(patient)
    assert after["status"] == "CANCELLED" and after["id"] == booked["id"]


def test_the_front_desk_adds_a_doctor(web: Web) -> None:
    desk = web.admin()
    page = web.page()
    web.sign_in(page, desk)
    name = f"Dr. Added {date.today():%j}{id(page) % 1000}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Email", exact=True).fill(f"added-{id(page)}@example.com")
    page.get_by_label("Specialty").fill("Neurology")
    page.get_by_label("Time zone").select_option("Asia/Tokyo")
    page.get_by_role("button", name="Add doctor").click()
    expect(page.get_by_role("status").filter(has_text="was added")).to_contain_text(f"{name} (Neurology, Asia/Tokyo)")
    # Adding the same address again: the API's 409, in words.
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Email", exact=True).fill(f"added-{id(page)}@example.com")
    page.get_by_label("Specialty").fill("Neurology")
    page.get_by_role("button", name="Add doctor").click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_role("link", name="Book").click()
    expect(page.get_by_label("Doctor").locator("option", has_text=name)).to_have_count(1)
