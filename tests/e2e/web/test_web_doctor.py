"""A doctor in the browser: publishes a window (made and skipped slots, a refused window in
words), sees a patient's booking appear in the week with name and reason, marks a started
appointment completed; and a week with a change of the clocks shows the right local times."""

from __future__ import annotations

from datetime import date, timedelta

from playwright.sync_api import expect

from tests.e2e.booking_support import started_appointment
from tests.e2e.web.conftest import PHONE, Web, next_weekday


def test_a_doctor_publishes_a_window_and_sees_a_booking_appear_in_the_week(web: Web) -> None:
    doctor = web.doctor(name="Dr. Week View")
    day = next_weekday(date.today(), 3)
    page = web.page()
    web.sign_in(page, doctor)
    expect(page.get_by_role("heading", name="My schedule")).to_be_visible()

    page.get_by_label("Date").fill(day.isoformat())
    page.get_by_label("Start").fill("09:00")
    page.get_by_label("End").fill("11:15")
    page.get_by_label("Slot length (minutes)").fill("30")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status").filter(has_text="Made 4 slots; skipped 0")).to_contain_text("15 minutes")
    times = ["09:00-09:30", "09:30-10:00", "10:00-10:30", "10:30-11:00"]
    expect(page.locator("ul.made li")).to_have_text([m.replace("-", "\N{EN DASH}") for m in times])
    # Again, overlapping: only what is missing is made.
    page.get_by_label("End").fill("12:00")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status").filter(has_text="Made 2 slots; skipped 4")).to_be_visible()
    # A window that ends before it starts: the API's 422, in words.
    page.get_by_label("End").fill("08:00")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("alert")).to_contain_text("Please check your entry")

    patient = web.patient("Nora Patient")
    free = doctor.caller.get(f"/doctors/{doctor.id}/slots", params={"from": day.isoformat(), "to": day.isoformat()})
    first = free.json()["items"][0]  # 09:00
    made = patient.caller.post("/appointments", {"slot_id": first["id"], "reason": "Follow-up on blood test"})
    assert made.status_code == 201, made.text

    # Two more patients the day after, so the week (and its screenshot) shows a schedule.
    web.publish(doctor, day + timedelta(days=1), "14:00", "16:00")
    next_day = doctor.caller.get(
        f"/doctors/{doctor.id}/slots",
        params={"from": (day + timedelta(days=1)).isoformat(), "to": (day + timedelta(days=1)).isoformat()},
    ).json()["items"]
    for slot, (name, reason) in zip(
        next_day[1::2], [("Omar Haddad", "Knee pain"), ("Mia Rossi", "Annual check-up")], strict=False
    ):
        other = web.patient(name)
        assert other.caller.post("/appointments", {"slot_id": slot["id"], "reason": reason}).status_code == 201
    page.goto(f"{web.url}#/doctor?week={day.isoformat()}")
    schedule_day = page.locator(f"li.day[data-date='{day.isoformat()}']")
    card = schedule_day.locator("article")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("Patient: Nora Patient")
    expect(card).to_contain_text("Reason: Follow-up on blood test")
    expect(schedule_day.get_by_role("heading", level=3)).to_contain_text("· 5 free")
    expect(page.get_by_text("Patient: Mia Rossi")).to_be_visible()
    expect(page.get_by_text("Patient: Omar Haddad")).to_be_visible()
    web.screenshot(page, "doctor-week-desktop")
    phone = web.page(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    web.sign_in(phone, doctor, f"/doctor?week={day.isoformat()}")
    expect(phone.locator(f"li.day[data-date='{day.isoformat()}'] article")).to_contain_text("Nora Patient")
    phone.locator(f"li.day[data-date='{day.isoformat()}']").scroll_into_view_if_needed()
    web.screenshot(phone, "doctor-week-phone")


def test_a_doctor_marks_a_started_appointment_completed(web: Web) -> None:
    doctor = web.doctor()
    patient = web.patient("Started Patient")
    appointment = started_appointment(web.stack.database_url or "", doctor.caller, patient.caller, 5)
    page = web.page()
    web.sign_in(page, doctor)
    today = page.locator("section", has=page.get_by_role("heading", name="Today"))
    card = today.locator("article")
    expect(card).to_contain_text("Patient: Started Patient")
    card.get_by_role("button", name="Mark completed").click()
    expect(card).to_contain_text("Completed")
    expect(card.get_by_role("button", name="Mark completed")).to_have_count(0)
    state = doctor.caller.get(f"/appointments/{appointment}").json()
    assert state["status"] == "COMPLETED"


def dst_start(today: date) -> date:
    """The next second Sunday of March (New York springs forward; Berlin two weeks later)."""
    for year in (today.year, today.year + 1):
        march = date(year, 3, 1)
        first_sunday = march + timedelta(days=(6 - march.weekday()) % 7)
        day = first_sunday + timedelta(days=7)
        if day - timedelta(days=3) > today:
            return day
    raise AssertionError("unreachable")


def test_a_week_with_a_change_of_the_clocks_shows_the_right_local_times(web: Web) -> None:
    """A New York doctor's 09:00 is 15:00 in Berlin before New York springs forward and 14:00
    after (Berlin changes two weeks later); on the night itself 01:00-04:00 New York time
    holds two hours: 01:00 EST (07:00 in Berlin) and 03:00 EDT (08:00)."""
    doctor = web.doctor(timezone="America/New_York", name="Dr. New York")
    change = dst_start(date.today())
    before, after = change - timedelta(days=2), change + timedelta(days=1)
    web.publish(doctor, before, "09:00", "10:00", 60)
    web.publish(doctor, change, "01:00", "04:00", 60)
    web.publish(doctor, after, "09:00", "10:00", 60)
    patient = web.patient()
    page = web.page(timezone="Europe/Berlin")
    web.sign_in(page, patient)
    web.open_week(page, doctor, before)
    expect(page.get_by_text("Dr. New York works in New York time (America/New_York)")).to_be_visible()
    days = page.locator("ol.week > li")
    expect(days).to_have_count(7)
    by_day = {}
    for i in range(7):
        item = days.nth(i)
        by_day[item.locator("h3").inner_text()] = item.locator("button.slot").all_inner_texts()
    label = lambda d: f"{d:%A} {d.day} {d:%B}"  # noqa: E731
    assert by_day[label(before)] == ["15:00\n09:00 New York"], by_day
    assert by_day[label(change)] == ["07:00\n01:00 New York", "08:00\n03:00 New York"], by_day
    assert by_day[label(after)] == ["14:00\n09:00 New York"], by_day
