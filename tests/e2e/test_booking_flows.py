"""Booking flows through the running stack: rebooking, the audit trail, the state machine,
overlaps, the past, patient profiles, listing, and availability windows across DST."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from local.stack import Stack
from tests.e2e.booking_support import (
    assert_problem,
    book,
    database,
    free_slot_ids,
    new_id,
    past_slot,
    register,
    started_appointment,
)
from tests.e2e.client import Api, Caller
from tests.e2e.conftest import E2E_ENV


def soon(days: int) -> date:
    return date.today() + timedelta(days=days)


def cancel(caller: Caller, appointment_id: str, reason: str | None = None) -> dict[str, Any]:
    response = caller.patch(f"/appointments/{appointment_id}", {"status": "CANCELLED", "reason": reason})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- cancel, rebook, move ----------------------------------------------------------------


def test_a_cancelled_slot_is_bookable_again_at_once_by_another_patient(api: Api) -> None:
    doctor = api.doctor()
    slot = api.publish(doctor, soon(4), "09:00", "09:30", 30)[0]["id"]
    first, second = api.patient(), api.patient()
    booked = book(first, slot)
    day = soon(4).isoformat()
    assert slot not in free_slot_ids(api, doctor, day, day)
    assert_problem(second.post("/appointments", {"slot_id": slot}), 409)

    cancelled = cancel(first, booked["id"], "cannot come")
    assert cancelled["status"] == "CANCELLED" and cancelled["slot_id"] == slot
    assert slot in free_slot_ids(api, doctor, day, day)
    rebooked = book(second, slot)
    assert rebooked["id"] != booked["id"] and rebooked["patient_id"] == str(second.id)
    assert slot not in free_slot_ids(api, doctor, day, day)
    # The first patient's cancelled appointment stays as it was.
    assert first.get(f"/appointments/{booked['id']}").json()["status"] == "CANCELLED"
    assert_problem(first.post("/appointments", {"slot_id": slot}), 409)


def test_the_audit_trail_of_book_move_cancel(api: Api) -> None:
    doctor = api.doctor()
    slots = api.publish(doctor, soon(4), "13:00", "14:00", 30)
    patient = api.patient()
    booked = book(patient, slots[0]["id"], reason="checkup")
    moved = patient.patch(f"/appointments/{booked['id']}", {"slot_id": slots[1]["id"], "reason": "later"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["slot_id"] == slots[1]["id"]
    assert moved.json()["start_time"] == slots[1]["start_time"]
    # The old slot is free again, the new one taken.
    day = soon(4).isoformat()
    assert free_slot_ids(api, doctor, day, day) == [slots[0]["id"]]
    cancel(doctor, booked["id"], "doctor is ill")

    trail = patient.get(f"/appointments/{booked['id']}/audit")
    assert trail.status_code == 200
    items = trail.json()["items"]
    assert [i["action"] for i in items] == ["BOOKED", "RESCHEDULED", "CANCELLED"]
    assert [(i["from_status"], i["to_status"]) for i in items] == [
        (None, "BOOKED"),
        ("BOOKED", "BOOKED"),
        ("BOOKED", "CANCELLED"),
    ]
    assert [i["actor_id"] for i in items] == [str(patient.id), str(patient.id), str(doctor.id)]
    assert [i["reason"] for i in items] == ["checkup", "later", "doctor is ill"]
    assert [i["id"] for i in items] == sorted(i["id"] for i in items)
    stamps = [datetime.fromisoformat(i["occurred_at"]) for i in items]
    assert stamps == sorted(stamps)
    assert all(i["appointment_id"] == booked["id"] for i in items)
    assert items[0]["details"] == {"slot_id": slots[0]["id"]}
    move = items[1]["details"]
    assert (move["from_slot_id"], move["to_slot_id"]) == (slots[0]["id"], slots[1]["id"])
    # Written as the API writes every instant (the slots' own start_time), in UTC with Z.
    assert (move["from_start_time"], move["to_start_time"]) == (slots[0]["start_time"], slots[1]["start_time"])
    assert (move["from_end_time"], move["to_end_time"]) == (slots[0]["end_time"], slots[1]["end_time"])
    assert move["from_start_time"].endswith("Z")
    # Its doctor and an admin read the same trail.
    assert doctor.get(f"/appointments/{booked['id']}/audit").json() == trail.json()
    assert api.admin().get(f"/appointments/{booked['id']}/audit").json() == trail.json()


def test_moving_to_another_doctors_slot(api: Api) -> None:
    first_doctor, second_doctor = api.doctor(), api.doctor("America/New_York")
    mine = api.publish(first_doctor, soon(10), "09:00", "09:30", 30)[0]
    theirs = api.publish(second_doctor, soon(10), "09:00", "09:30", 30)[0]
    patient = api.patient()
    booked = book(patient, mine["id"])
    moved = patient.patch(f"/appointments/{booked['id']}", {"slot_id": theirs["id"]})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["doctor_id"], moved.json()["start_time"]) == (str(second_doctor.id), theirs["start_time"])
    assert second_doctor.get(f"/appointments/{booked['id']}").status_code == 200
    assert_problem(first_doctor.get(f"/appointments/{booked['id']}"), 404)
    details = patient.get(f"/appointments/{booked['id']}/audit").json()["items"][-1]["details"]
    assert (details["from_doctor_id"], details["to_doctor_id"]) == (str(first_doctor.id), str(second_doctor.id))
    assert (details["from_slot_id"], details["to_slot_id"]) == (mine["id"], theirs["id"])
    assert datetime.fromisoformat(details["to_end_time"]) == datetime.fromisoformat(theirs["end_time"])


def test_moving_into_a_taken_unknown_or_past_slot(api: Api, stack: Stack) -> None:
    doctor = api.doctor()
    slots = api.publish(doctor, soon(11), "09:00", "10:00", 30)
    patient, other = api.patient(), api.patient()
    booked = book(patient, slots[0]["id"])
    book(other, slots[1]["id"])
    before = patient.get(f"/appointments/{booked['id']}").json()
    assert_problem(patient.patch(f"/appointments/{booked['id']}", {"slot_id": slots[1]["id"]}), 409)
    assert_problem(patient.patch(f"/appointments/{booked['id']}", {"slot_id": new_id()}), 404)
    assert_problem(
        patient.patch(f"/appointments/{booked['id']}", {"slot_id": past_slot(stack.database_url or "", doctor)}), 422
    )
    assert_problem(patient.patch(f"/appointments/{booked['id']}", {"slot_id": slots[0]["id"]}), 422)
    assert patient.get(f"/appointments/{booked['id']}").json() == before
    assert len(patient.get(f"/appointments/{booked['id']}/audit").json()["items"]) == 1


# -- the state machine -------------------------------------------------------------------


def test_complete_and_no_show_only_once_started_and_only_by_doctor_or_admin(api: Api, stack: Stack) -> None:
    doctor, other_doctor = api.doctor(), api.doctor()
    patient = api.patient()
    future = book(patient, api.publish(doctor, soon(5), "15:00", "15:30", 30)[0]["id"])
    for status in ("COMPLETED", "NO_SHOW"):
        body = assert_problem(doctor.patch(f"/appointments/{future['id']}", {"status": status}), 409)
        assert "started" in body["detail"]
        assert_problem(api.admin().patch(f"/appointments/{future['id']}", {"status": status}), 409)

    url = stack.database_url or ""
    started = started_appointment(url, doctor, patient)
    for status in ("COMPLETED", "NO_SHOW"):
        assert_problem(patient.patch(f"/appointments/{started}", {"status": status}), 403)
        assert_problem(other_doctor.patch(f"/appointments/{started}", {"status": status}), 404)
    assert patient.get(f"/appointments/{started}").json()["status"] == "BOOKED"

    done = doctor.patch(f"/appointments/{started}", {"status": "COMPLETED", "reason": "seen"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "COMPLETED"
    assert_problem(doctor.patch(f"/appointments/{started}", {"status": "COMPLETED"}), 409)
    assert_problem(doctor.patch(f"/appointments/{started}", {"status": "NO_SHOW"}), 409)
    assert_problem(patient.patch(f"/appointments/{started}", {"status": "CANCELLED"}), 409)
    trail = doctor.get(f"/appointments/{started}/audit").json()["items"]
    assert [(i["action"], i["from_status"], i["to_status"], i["actor_id"]) for i in trail] == [
        ("BOOKED", None, "BOOKED", str(patient.id)),
        ("COMPLETED", "BOOKED", "COMPLETED", str(doctor.id)),
    ]

    admin = api.admin()
    # An hour ago: clear of the first started slot (10 minutes ago, 30 long), so they never overlap.
    missed = started_appointment(url, doctor, api.patient(), minutes_ago=60)
    response = admin.patch(f"/appointments/{missed}", {"status": "NO_SHOW"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "NO_SHOW"
    assert_problem(admin.patch(f"/appointments/{missed}", {"status": "COMPLETED"}), 409)


def test_a_started_appointment_is_moved_by_nobody_and_cancelled_only_by_the_clinic(api: Api, stack: Stack) -> None:
    doctor, patient, admin = api.doctor(), api.patient(), api.admin()
    free = api.publish(doctor, soon(7), "09:00", "09:30", 30)[0]["id"]
    started = started_appointment(stack.database_url or "", doctor, patient)
    before = patient.get(f"/appointments/{started}").json()
    for caller in (patient, doctor, admin):
        body = assert_problem(caller.patch(f"/appointments/{started}", {"slot_id": free}), 409)
        assert "started" in body["detail"]
    body = assert_problem(patient.patch(f"/appointments/{started}", {"status": "CANCELLED"}), 409)
    assert "started" in body["detail"]
    assert patient.get(f"/appointments/{started}").json() == before
    assert len(patient.get(f"/appointments/{started}/audit").json()["items"]) == 1
    day = soon(7).isoformat()
    assert free in free_slot_ids(api, doctor, day, day)
    # The clinic records that it called the visit off.
    cancelled = doctor.patch(f"/appointments/{started}", {"status": "CANCELLED", "reason": "doctor ill"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"


def test_transitions_outside_the_state_machine_are_409(api: Api) -> None:
    doctor = api.doctor()
    slots = api.publish(doctor, soon(6), "09:00", "10:00", 30)
    patient = api.patient()
    booked = book(patient, slots[0]["id"])
    cancel(patient, booked["id"])
    state = patient.get(f"/appointments/{booked['id']}").json()
    assert_problem(patient.patch(f"/appointments/{booked['id']}", {"status": "CANCELLED"}), 409)
    assert_problem(doctor.patch(f"/appointments/{booked['id']}", {"status": "CANCELLED"}), 409)
    moved = patient.patch(f"/appointments/{booked['id']}", {"slot_id": slots[1]["id"]})
    assert assert_problem(moved, 409)["type"] == "/problems/transition-not-allowed"
    assert_problem(doctor.patch(f"/appointments/{booked['id']}", {"status": "COMPLETED"}), 409)
    assert_problem(doctor.patch(f"/appointments/{booked['id']}", {"status": "NO_SHOW"}), 409)
    assert patient.get(f"/appointments/{booked['id']}").json() == state
    assert len(patient.get(f"/appointments/{booked['id']}/audit").json()["items"]) == 2
    assert slots[1]["id"] in free_slot_ids(api, doctor, soon(6).isoformat(), soon(6).isoformat())


def test_a_patient_books_themself_up_to_max_upcoming_appointments(api: Api) -> None:
    """MAX_UPCOMING_APPOINTMENTS (10 by default, 30 in these tests): a few accounts
    cannot take every slot. The clinic may still book for them."""
    cap = int(E2E_ENV["MAX_UPCOMING_APPOINTMENTS"])
    doctor = api.doctor()
    slots = api.publish(doctor, soon(13), "06:00", "23:00", 30)
    patient = api.patient()
    held = [book(patient, slot["id"]) for slot in slots[:cap]]
    body = assert_problem(patient.post("/appointments", {"slot_id": slots[cap]["id"]}), 409)
    assert body["type"] == "/problems/too-many-upcoming"
    assert f"you already hold {cap} upcoming appointments" in body["detail"]
    assert slots[cap]["id"] in free_slot_ids(api, doctor, soon(13).isoformat(), soon(13).isoformat())
    cancel(patient, held[0]["id"])
    book(patient, slots[cap]["id"])
    # The clinic may book one more for them.
    extra = api.admin().post("/appointments", {"slot_id": slots[cap + 1]["id"], "patient_id": str(patient.id)})
    assert extra.status_code == 201, extra.text


def test_a_patient_changes_their_own_appointments_at_most_max_changes_per_hour(api: Api, stack: Stack) -> None:
    """MAX_CHANGES_PER_HOUR (20 by default, 60 in these tests): a script looping
    book-cancel is stopped, whatever addresses it comes from; cancelling never is."""
    limit = int(E2E_ENV["MAX_CHANGES_PER_HOUR"])
    doctor = api.doctor()
    slots = api.publish(doctor, soon(15), "06:00", "09:00", 30)
    patient = api.patient()
    assert limit % 2 == 0, "the loop below makes the changes two at a time"
    for _ in range(limit // 2):
        cancel(patient, book(patient, slots[0]["id"])["id"])
    # The clinic books one for them (not one of their changes); their next change is refused.
    held = book(api.admin(), slots[1]["id"], patient_id=str(patient.id))
    refused = patient.post("/appointments", {"slot_id": slots[2]["id"]})
    body = assert_problem(refused, 409)
    assert body["type"] == "/problems/too-many-changes"
    assert (
        f"you made {limit} changes to your appointments in the last hour, the most allowed is {limit}"
        in (body["detail"])
    )
    assert 3000 <= int(refused.headers["Retry-After"]) <= 3600
    moved = patient.patch(f"/appointments/{held['id']}", {"slot_id": slots[2]["id"]})
    assert assert_problem(moved, 409)["type"] == "/problems/too-many-changes"
    assert slots[2]["id"] in free_slot_ids(api, doctor, soon(15).isoformat(), soon(15).isoformat())
    with database(stack.database_url or "") as db:
        [[changes]] = db.run("SELECT count(*) FROM audit_appointment WHERE actor_id = :p", p=patient.id)
    assert changes == limit
    # Cancelling still works, and the clinic may still book and move for them.
    cancel(patient, held["id"])
    admin = api.admin()
    again = book(admin, slots[2]["id"], patient_id=str(patient.id))
    assert admin.patch(f"/appointments/{again['id']}", {"slot_id": slots[3]["id"]}).status_code == 200


def test_a_patient_cannot_hold_two_overlapping_appointments(api: Api) -> None:
    one, other = api.doctor(), api.doctor()
    day = soon(12)
    first = api.publish(one, day, "09:00", "10:00", 30)
    # The other doctor's slots start 15 minutes later: each overlaps one of the first doctor's.
    second = api.publish(other, day, "09:15", "10:15", 30)
    patient = api.patient()
    at_nine = book(patient, first[0]["id"])  # 09:00-09:30
    body = assert_problem(patient.post("/appointments", {"slot_id": second[0]["id"]}), 409)  # 09:15-09:45
    assert body["type"] == "/problems/overlapping-appointment"
    at_half_past = book(patient, first[1]["id"])  # 09:30-10:00: back to back is fine
    cancel(patient, at_nine["id"])
    assert_problem(patient.post("/appointments", {"slot_id": second[0]["id"]}), 409)  # still overlaps 09:30
    cancel(patient, at_half_past["id"])
    quarter_past = book(patient, second[0]["id"])  # nothing left in the way
    # Moving another appointment into an overlap is refused, and changes nothing.
    later = book(patient, second[1]["id"])  # 09:45-10:15, back to back again
    moved = patient.patch(f"/appointments/{later['id']}", {"slot_id": first[1]["id"]})  # 09:30-10:00
    assert assert_problem(moved, 409)["type"] == "/problems/overlapping-appointment"
    assert patient.get(f"/appointments/{later['id']}").json() == later
    assert patient.get(f"/appointments/{quarter_past['id']}").json() == quarter_past
    # Another patient may take the overlapping slot.
    assert book(api.patient(), first[1]["id"])["status"] == "BOOKED"


def test_booking_the_past_is_422(api: Api, stack: Stack) -> None:
    doctor = api.doctor()
    patient = api.patient()
    for minutes_ago in (120, 10):  # long past, and started but not over
        slot = past_slot(stack.database_url or "", doctor, minutes_ago)
        body = assert_problem(patient.post("/appointments", {"slot_id": slot}), 422)
        assert "past" in body["detail"]
    assert patient.get("/appointments").json()["items"] == []


def test_booking_unknown_slots_and_admin_bookings(api: Api) -> None:
    doctor = api.doctor()
    slot = api.publish(doctor, soon(13), "09:00", "09:30", 30)[0]["id"]
    patient, admin = api.patient(), api.admin()
    assert_problem(patient.post("/appointments", {"slot_id": new_id()}), 404)
    assert_problem(admin.post("/appointments", {"slot_id": slot}), 422)  # for whom?
    assert_problem(admin.post("/appointments", {"slot_id": slot, "patient_id": new_id()}), 404)
    register(patient)
    made = admin.post("/appointments", {"slot_id": slot, "patient_id": str(patient.id)})
    assert made.status_code == 201, made.text
    assert made.json()["patient_id"] == str(patient.id)
    trail = patient.get(f"/appointments/{made.json()['id']}/audit").json()["items"]
    assert trail[0]["actor_id"] == str(admin.id)


# -- patients ----------------------------------------------------------------------------


def test_register_a_patient_then_update(api: Api) -> None:
    patient = api.patient()
    created = patient.post("/patients", {"phone": "+49 30 1234567", "date_of_birth": "1980-02-29"})
    assert created.status_code == 201, created.text
    assert created.json() == {
        "id": str(patient.id),
        "email": patient.email,
        "name": patient.name,
        "phone": "+49 30 1234567",
        "date_of_birth": "1980-02-29",
    }
    updated = patient.post("/patients", {"phone": "+1 (212) 555-0100"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["phone"] == "+1 (212) 555-0100"
    assert updated.json()["date_of_birth"] == "1980-02-29"  # left out: kept
    again = patient.post("/patients", {"phone": "+1 (212) 555-0100"})
    assert (again.status_code, again.json()) == (200, updated.json())
    cleared = patient.post("/patients", {"date_of_birth": None})
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["phone"], cleared.json()["date_of_birth"]) == ("+1 (212) 555-0100", None)
    assert patient.post("/patients", {}).json() == cleared.json()
    # Name and email come from the sign-in, not from here.
    assert_problem(patient.post("/patients", {"name": "Someone Else"}), 422)
    assert_problem(patient.post("/patients", {"email": "else@example.com"}), 422)


def test_an_admin_registers_a_patient(api: Api) -> None:
    admin = api.admin()
    user_id = new_id()
    body = {"user_id": user_id, "email": f"NEW-{user_id[:8]}@Example.com", "name": "New Patient"}
    created = admin.post("/patients", body)
    assert created.status_code == 201, created.text
    assert created.json()["email"] == f"new-{user_id[:8]}@example.com"
    assert admin.post("/patients", {**body, "phone": "12345"}).status_code == 200
    assert_problem(admin.post("/patients", {**body, "email": "other@example.com"}), 409)
    other_name = assert_problem(admin.post("/patients", {**body, "name": "Another Patient"}), 409)
    assert other_name["detail"] == "this user exists with another name"
    assert_problem(admin.post("/patients", {}), 422)
    assert_problem(admin.post("/patients", {"user_id": new_id(), "name": "No Email"}), 422)


# -- listing -----------------------------------------------------------------------------


def test_list_appointments_with_filters_and_pages(api: Api) -> None:
    doctor = api.doctor()
    patient = api.patient()
    days = [soon(14 + n) for n in range(5)]
    booked = [book(patient, api.publish(doctor, day, "11:00", "11:30", 30)[0]["id"]) for day in days]
    for appointment in booked[1::2]:  # the 2nd and 4th
        cancel(patient, appointment["id"])

    def ids(params: dict[str, Any]) -> list[str]:
        response = patient.get("/appointments", params=params)
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["items"]]

    every = [a["id"] for a in booked]
    assert ids({}) == every  # oldest slot first
    assert ids({"status": "BOOKED"}) == [every[0], every[2], every[4]]
    assert ids({"status": "CANCELLED"}) == [every[1], every[3]]
    assert ids({"status": "COMPLETED"}) == []
    start = [datetime.fromisoformat(a["start_time"]) for a in booked]
    assert ids({"from": start[1].isoformat(), "to": start[3].isoformat()}) == [every[1], every[2]]
    assert ids({"from": start[1].isoformat()}) == every[1:]
    assert ids({"to": start[1].isoformat()}) == every[:1]
    assert ids({"from": start[1].isoformat(), "status": "BOOKED"}) == [every[2], every[4]]
    # Dates: `from` from its first instant, `to` through its last (UTC days).
    assert ids({"from": days[1].isoformat(), "to": days[3].isoformat()}) == every[1:4]
    assert ids({"from": days[2].isoformat(), "to": days[2].isoformat()}) == [every[2]]
    assert_problem(patient.get("/appointments", params={"from": days[3].isoformat(), "to": days[1].isoformat()}), 422)

    pages: list[list[str]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"page_size": 2}
        if token:
            params["page_token"] = token
        page = patient.get("/appointments", params=params).json()
        pages.append([a["id"] for a in page["items"]])
        token = page["next_page_token"]
        if not token:
            break
    assert pages == [every[0:2], every[2:4], every[4:5]]
    # Filters hold across pages.
    first = patient.get("/appointments", params={"page_size": 1, "status": "BOOKED"}).json()
    second = patient.get(
        "/appointments", params={"page_size": 1, "status": "BOOKED", "page_token": first["next_page_token"]}
    ).json()
    assert [a["id"] for a in first["items"] + second["items"]] == [every[0], every[2]]
    # The doctor sees the same five, an admin sees them among everyone's.
    assert [a["id"] for a in doctor.get("/appointments").json()["items"]] == every
    admin_ids = ids_of_all(api.admin(), {"from": days[0].isoformat(), "to": days[4].isoformat()})
    assert set(every) <= set(admin_ids)


def ids_of_all(caller: Caller, params: dict[str, Any]) -> list[str]:
    found: list[str] = []
    token = None
    while True:
        page = caller.get(
            "/appointments", params={**params, "page_size": 100, **({"page_token": token} if token else {})}
        ).json()
        found += [a["id"] for a in page["items"]]
        token = page["next_page_token"]
        if not token:
            return found


# -- availability windows and DST ----------------------------------------------------------


def next_transition(zone: ZoneInfo, forward: bool) -> date:
    """The next day (from the day after tomorrow, within a year) whose UTC offset grows
    (spring forward) or shrinks (fall back) in `zone`."""
    day = soon(2)
    for _ in range(366):
        before = datetime.combine(day, time(0), tzinfo=zone).utcoffset()
        after = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).utcoffset()
        assert before is not None and after is not None
        if (after > before) if forward else (after < before):
            return day
        day += timedelta(days=1)
    raise AssertionError(f"no DST change in {zone.key} within a year")


def publish(doctor: Caller, day: date, start: str, end: str, minutes: int) -> Any:
    return doctor.post(
        f"/doctors/{doctor.id}/slots", {"date": day.isoformat(), "start": start, "end": end, "slot_minutes": minutes}
    )


def utc_starts(items: list[dict[str, Any]]) -> list[datetime]:
    return [datetime.fromisoformat(i["start_time"]).astimezone(UTC) for i in items]


@pytest.mark.parametrize(
    ("zone", "forward", "start", "end", "count"),
    [
        ("America/New_York", True, "01:00", "04:00", 2),
        ("America/New_York", False, "00:00", "03:00", 4),
        ("Europe/Berlin", True, "01:00", "04:00", 2),
        ("Europe/Berlin", False, "01:00", "04:00", 4),
    ],
)
def test_dst_windows(api: Api, zone: str, forward: bool, start: str, end: str, count: int) -> None:
    tz = ZoneInfo(zone)
    day = next_transition(tz, forward)
    assert day.year >= 2027 or day > date.today()
    doctor = api.doctor(zone)
    response = publish(doctor, day, start, end, 60)
    assert response.status_code == 201, response.text
    items = response.json()["items"]
    assert len(items) == count and response.json()["skipped"] == 0
    first = datetime.combine(day, time.fromisoformat(start), tzinfo=tz).astimezone(UTC)
    assert utc_starts(items) == [first + timedelta(hours=n) for n in range(count)]
    for item in items:
        assert datetime.fromisoformat(item["end_time"]) - datetime.fromisoformat(item["start_time"]) == timedelta(
            hours=1
        )
    # The doctor's calendar day lists exactly these.
    assert free_slot_ids(api, doctor, day.isoformat(), day.isoformat()) == [i["id"] for i in items]


@pytest.mark.parametrize(
    ("zone", "start", "end"),
    [
        ("America/New_York", "02:30", "04:00"),  # starts in the gap
        ("America/New_York", "02:00", "03:30"),
        ("America/New_York", "00:00", "02:15"),  # ends in the gap
        ("Europe/Berlin", "02:00", "05:00"),
        ("Europe/Berlin", "01:00", "02:30"),
    ],
)
def test_a_window_at_a_nonexistent_local_time_is_422(api: Api, zone: str, start: str, end: str) -> None:
    day = next_transition(ZoneInfo(zone), forward=True)
    doctor = api.doctor(zone)
    body = assert_problem(publish(doctor, day, start, end, 30), 422)
    assert "does not exist" in body["detail"]
    assert free_slot_ids(api, doctor, day.isoformat(), day.isoformat()) == []


def test_republishing_an_overlapping_window_creates_only_the_missing_slots(api: Api) -> None:
    zone = "Europe/Berlin"
    doctor = api.doctor(zone)
    day = soon(20)

    def local(clock: str) -> datetime:
        return datetime.combine(day, time.fromisoformat(clock), tzinfo=ZoneInfo(zone)).astimezone(UTC)

    first = publish(doctor, day, "09:00", "11:00", 30)
    assert (first.status_code, len(first.json()["items"]), first.json()["skipped"]) == (201, 4, 0)
    again = publish(doctor, day, "09:00", "11:00", 30)
    assert (again.status_code, again.json()["items"], again.json()["skipped"]) == (201, [], 4)
    wider = publish(doctor, day, "10:00", "12:00", 30)
    assert wider.status_code == 201
    assert utc_starts(wider.json()["items"]) == [local("11:00"), local("11:30")]
    assert wider.json()["skipped"] == 2
    # Slots that would straddle existing ones are skipped too: no overlap is ever created.
    shifted = publish(doctor, day, "08:45", "12:15", 30)
    assert (shifted.status_code, shifted.json()["items"], shifted.json()["skipped"]) == (201, [], 7)
    longer = publish(doctor, day, "08:00", "13:00", 60)  # 08-09 and 12-13 fit; 09-12 are taken
    assert utc_starts(longer.json()["items"]) == [local("08:00"), local("12:00")]
    assert longer.json()["skipped"] == 3
    listed = api.get(f"/doctors/{doctor.id}/slots", params={"from": day.isoformat(), "to": day.isoformat()})
    slots = listed.json()["items"]
    assert len(slots) == 8
    for a, b in itertools.pairwise(slots):
        assert datetime.fromisoformat(a["end_time"]) <= datetime.fromisoformat(b["start_time"])
