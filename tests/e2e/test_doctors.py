"""Doctors and their slots through the gateway."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from local.seed import DOCTORS_SEED
from tests.e2e.client import Api


def test_seeded_doctors_are_listed_through_the_gateway(api: Api) -> None:
    response = api.get("/doctors", params={"page_size": 100})
    assert response.status_code == 200
    listed = {d["id"]: d for d in response.json()["items"]}
    for doctor_id, _email, name, specialty, zone in DOCTORS_SEED:
        assert listed[str(doctor_id)] == {"id": str(doctor_id), "name": name, "specialty": specialty, "timezone": zone}


def test_doctors_filter_by_specialty_and_page(api: Api) -> None:
    response = api.get("/doctors", params={"specialty": "dermatology"})
    assert [d["name"] for d in response.json()["items"]] == ["Dr. Jonas Berg"]
    first = api.get("/doctors", params={"page_size": 1}).json()
    assert len(first["items"]) == 1 and first["next_page_token"]
    second = api.get("/doctors", params={"page_size": 1, "page_token": first["next_page_token"]}).json()
    assert second["items"][0]["id"] != first["items"][0]["id"]


def test_one_doctor_and_unknown_doctor(api: Api) -> None:
    doctor_id = str(DOCTORS_SEED[2][0])
    assert api.get(f"/doctors/{doctor_id}").json()["timezone"] == "Asia/Tokyo"
    missing = api.get("/doctors/4b0f6a43-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert api.get("/doctors/not-a-uuid").status_code == 404


def test_a_slot_page_token_belongs_to_its_doctor(api: Api) -> None:
    first, second = api.doctor(), api.doctor()
    day = date.today() + timedelta(days=12)
    for doctor in (first, second):
        api.publish(doctor, day, "09:00", "10:00", 30)
    params = {"from": day.isoformat(), "to": day.isoformat(), "page_size": 1}
    page = api.get(f"/doctors/{first.id}/slots", params=params).json()
    assert page["next_page_token"]
    following = {**params, "page_token": page["next_page_token"]}
    assert api.get(f"/doctors/{first.id}/slots", params=following).status_code == 200
    other = api.get(f"/doctors/{second.id}/slots", params=following)
    assert other.status_code == 400 and other.headers["Content-Type"].startswith("application/problem+json")


def test_slots_that_have_started_are_not_published_and_count_as_skipped(api: Api) -> None:
    # A zone whose local time is well inside a day, so the window does not cross midnight.
    now = datetime.now(UTC)
    zone = next(z for z in ("UTC", "Asia/Tokyo", "America/New_York") if 1 <= now.astimezone(ZoneInfo(z)).hour <= 21)
    doctor = api.doctor(timezone=zone)
    local = now.astimezone(ZoneInfo(zone)).replace(second=0, microsecond=0) - timedelta(minutes=1)
    window = {"date": local.date().isoformat(), "start": local.strftime("%H:%M"), "slot_minutes": 30}

    def publish(minutes: int) -> Any:
        end = (local + timedelta(minutes=minutes)).strftime("%H:%M")
        return doctor.post(f"/doctors/{doctor.id}/slots", {**window, "end": end})

    partly = publish(60)
    assert partly.status_code == 201, partly.text
    assert (len(partly.json()["items"]), partly.json()["skipped"]) == (1, 1)  # the first slot has started
    wholly = publish(30)
    assert wholly.status_code == 422, wholly.text
    assert "started" in wholly.json()["detail"]


def test_an_evening_until_midnight_ends_at_the_midnight_that_ends_its_day(api: Api) -> None:
    doctor = api.doctor(timezone="Europe/Berlin")
    day = date.today() + timedelta(days=20)
    midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=ZoneInfo("Europe/Berlin"))
    for end, doctor_ in (("24:00", doctor), ("00:00", api.doctor(timezone="Europe/Berlin"))):
        window = {"date": day.isoformat(), "start": "22:00", "end": end, "slot_minutes": 30}
        made = doctor_.post(f"/doctors/{doctor_.id}/slots", window)
        assert made.status_code == 201, made.text
        ends = [datetime.fromisoformat(slot["end_time"]) for slot in made.json()["items"]]
        assert len(ends) == 4 and ends[-1] == midnight
    # A night across midnight is two windows: an end before the start is refused, not read as tomorrow.
    night = doctor.post(
        f"/doctors/{doctor.id}/slots", {"date": day.isoformat(), "start": "22:00", "end": "02:00", "slot_minutes": 30}
    )
    assert night.status_code == 422 and "two windows" in night.json()["detail"]


def test_publishing_says_how_many_minutes_at_the_end_were_too_short_for_a_slot(api: Api) -> None:
    doctor = api.doctor(timezone="America/New_York")
    day = (date.today() + timedelta(days=25)).isoformat()
    made = doctor.post(
        f"/doctors/{doctor.id}/slots", {"date": day, "start": "09:00", "end": "10:45", "slot_minutes": 30}
    )
    assert made.status_code == 201, made.text
    assert (len(made.json()["items"]), made.json()["unused_minutes"]) == (3, 15)
    whole = doctor.post(
        f"/doctors/{doctor.id}/slots", {"date": day, "start": "13:00", "end": "14:00", "slot_minutes": 20}
    )
    assert (len(whole.json()["items"]), whole.json()["unused_minutes"]) == (3, 0)
