"""The waitlist through the running stack (decision 0013), with real concurrency: every
racing request has its own thread and HTTP session, released together by a barrier.
The offer email goes through the Cloud Tasks emulator, notify and the mail sink; the
expiry is the delayed task (HOLD_MINUTES is 0.25 in the e2e stack)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import date, timedelta
from email.message import EmailMessage
from typing import Any

from local.mailsink import read_all
from local.stack import Stack
from tests.e2e.booking_support import assert_problem, database, free_slot_ids
from tests.e2e.client import Api, Caller
from tests.e2e.test_booking_races import fresh_session, no_server_errors, race

DIRECT = 50


def offer_mails(stack: Stack, offer_id: str) -> list[EmailMessage]:
    return [m for m in read_all(stack.state / "mail") if m["X-Clinic-Offer"] == offer_id]


def wait_for(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def join(patient: Caller, doctor: Caller, day: date) -> str:
    response = patient.post("/waitlist", {"doctor_id": str(doctor.id), "from": str(day), "to": str(day)})
    assert response.status_code == 201, response.text
    entry_id: str = response.json()["id"]
    return entry_id


def entry(patient: Caller, entry_id: str) -> dict[str, Any]:
    response = patient.get("/waitlist", params={"active": "false"})
    assert response.status_code == 200, response.text
    found: dict[str, Any] = next(e for e in response.json()["items"] if e["id"] == entry_id)
    return found


def booked_slot(api: Api, day: date) -> tuple[Caller, str, Caller, str]:
    """A doctor with one slot on `day`, booked by a patient: (doctor, slot, holder, appointment)."""
    doctor = api.doctor()
    slot = api.publish(doctor, day, "10:00", "10:30", 30)[0]["id"]
    holder = api.patient()
    response = holder.post("/appointments", {"slot_id": slot})
    assert response.status_code == 201, response.text
    return doctor, slot, holder, response.json()["id"]


def test_a_cancellation_and_50_direct_bookings_at_once_the_waiting_patient_gets_the_hold(
    api: Api, stack: Stack
) -> None:
    day = date.today() + timedelta(days=4)
    doctor, slot, holder, appointment = booked_slot(api, day)
    waiting = api.patient()
    entry_id = join(waiting, doctor, day)
    direct = [fresh_session(api.patient()) for _ in range(DIRECT)]
    fresh_session(holder)

    responses = race(
        [lambda: holder.patch(f"/appointments/{appointment}", {"status": "CANCELLED"})]
        # Spread over the cancellation's life: some before it commits, some waiting on it, some after.
        + [
            (lambda p=p, i=i: (time.sleep(0.008 * i), p.post("/appointments", {"slot_id": slot}))[1])
            for i, p in enumerate(direct)
        ]
    )

    no_server_errors(responses)
    assert responses[0].status_code == 200, responses[0].text
    kinds = Counter(assert_problem(r, 409)["type"] for r in responses[1:])
    assert set(kinds) <= {"/problems/slot-held", "/problems/slot-taken"}, kinds
    print("direct bookings:", dict(kinds))
    offer = entry(waiting, entry_id)["offer"]
    assert offer is not None and offer["slot_id"] == slot
    assert slot not in free_slot_ids(api, doctor, str(day), str(day))
    # The offer email comes through the queue and notify.
    assert len(wait_for(lambda: offer_mails(stack, offer["id"]), 30)) == 1
    accepted = waiting.post(f"/waitlist/{entry_id}/accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["slot_id"] == slot and accepted.json()["patient_id"] == str(waiting.id)
    again = waiting.post(f"/waitlist/{entry_id}/accept")
    assert again.status_code == 200 and again.json()["id"] == accepted.json()["id"]
    with database(stack.database_url or "") as conn:
        assert conn.run("SELECT count(*) FROM appointments WHERE slot_id = :s AND status = 'BOOKED'", s=slot) == [[1]]
        assert conn.run(
            "SELECT count(*) FROM audit_appointment WHERE appointment_id = :a AND action = 'BOOKED'",
            a=accepted.json()["id"],
        ) == [[1]]


def test_a_chain_of_three_decline_expire_third_gets_it_one_email_each(api: Api, stack: Stack) -> None:
    day = date.today() + timedelta(days=4)
    doctor, slot, holder, appointment = booked_slot(api, day)
    first, second, third = (api.patient() for _ in range(3))
    entries = [join(p, doctor, day) for p in (first, second, third)]
    assert holder.patch(f"/appointments/{appointment}", {"status": "CANCELLED"}).status_code == 200
    offers = [entry(first, entries[0])["offer"]]
    assert offers[0] is not None
    # Each answers once their email is in (an offer that ended first sends none).
    assert len(wait_for(lambda: offer_mails(stack, offers[0]["id"]), 30)) == 1
    assert first.post(f"/waitlist/{entries[0]}/decline").status_code == 200
    offers.append(entry(second, entries[1])["offer"])
    assert offers[1] is not None and offers[1]["slot_id"] == slot
    assert len(wait_for(lambda: offer_mails(stack, offers[1]["id"]), 14)) == 1
    # The second lets it expire: the delayed task moves it on (HOLD_MINUTES 0.25).
    offers.append(wait_for(lambda: entry(third, entries[2])["offer"], 60))
    assert offers[2] is not None and offers[2]["slot_id"] == slot
    assert entry(second, entries[1])["status"] == "WAITING"
    late = second.post(f"/waitlist/{entries[1]}/accept")
    assert assert_problem(late, 409)["type"] == "/problems/offer-ended"
    assert third.post(f"/waitlist/{entries[2]}/accept").status_code == 200
    for offer in offers[:2]:
        assert len(wait_for(lambda o=offer: offer_mails(stack, o["id"]), 30)) == 1
    # The third's offer email may have been skipped if accepted before the task ran;
    # it is never sent twice.
    assert len(offer_mails(stack, offers[2]["id"])) <= 1
    with database(stack.database_url or "") as conn:
        actions = [r[0] for r in conn.run("SELECT action FROM waitlist_events WHERE slot_id = :s ORDER BY id", s=slot)]
    assert actions == ["OFFERED", "DECLINED", "OFFERED", "EXPIRED", "OFFERED", "ACCEPTED"]


def test_bad_input_is_a_clear_4xx_and_changes_nothing(api: Api, stack: Stack) -> None:
    doctor = api.doctor()
    patient = api.patient()
    today = date.today()
    cases = [
        ({"from": str(today + timedelta(days=5)), "to": str(today + timedelta(days=2))}, 422),
        ({"from": str(today - timedelta(days=9)), "to": str(today - timedelta(days=2))}, 422),
        ({"from": str(today + timedelta(days=400)), "to": str(today + timedelta(days=402))}, 422),
        ({"doctor_id": str(uuid.uuid4())}, 404),
        ({"start": "12:00", "end": "09:00"}, 422),
        ({"from": "tomorrow"}, 422),
    ]
    for change, status in cases:
        body = {"doctor_id": str(doctor.id), "from": str(today), "to": str(today + timedelta(days=3)), **change}
        assert_problem(patient.post("/waitlist", body), status)
    for _ in range(3):
        join(patient, doctor, today + timedelta(days=2))
    too_many = patient.post("/waitlist", {"doctor_id": str(doctor.id), "from": str(today), "to": str(today)})
    assert assert_problem(too_many, 409)["type"] == "/problems/too-many-waitlist-entries"
    with database(stack.database_url or "") as conn:
        assert conn.run("SELECT count(*) FROM waitlist_entries WHERE patient_id = :p", p=patient.id) == [[3]]


def test_another_patients_entry_is_404_and_a_doctor_sees_their_own(api: Api) -> None:
    doctor = api.doctor()
    patient, stranger = api.patient(), api.patient()
    entry_id = join(patient, doctor, date.today() + timedelta(days=3))
    for path in (f"/waitlist/{entry_id}/accept", f"/waitlist/{entry_id}/decline"):
        assert_problem(stranger.post(path), 404)
    assert_problem(stranger.request("DELETE", f"/waitlist/{entry_id}"), 404)
    assert [e["id"] for e in doctor.get("/waitlist").json()["items"]] == [entry_id]
    assert stranger.get("/waitlist").json()["items"] == []
    left = patient.request("DELETE", f"/waitlist/{entry_id}")
    assert left.status_code == 200 and left.json()["status"] == "LEFT"


def test_an_answer_naming_an_offer_that_ended_is_409_when_the_entry_was_offered_another_time(
    api: Api, stack: Stack
) -> None:
    """The patient read offer A; it expired and the entry was offered B since: a late
    accept or decline naming A is 409 offer-ended and changes nothing; naming B books B."""
    day = date.today() + timedelta(days=4)
    doctor = api.doctor()
    slots = [s["id"] for s in api.publish(doctor, day, "10:00", "11:00", 30)]
    holders = [api.patient() for _ in slots]
    booked = [h.post("/appointments", {"slot_id": s}) for h, s in zip(holders, slots, strict=True)]
    assert all(b.status_code == 201 for b in booked), [b.text for b in booked]
    patient = api.patient()
    entry_id = join(patient, doctor, day)
    for holder, appointment in zip(holders, booked, strict=True):
        assert holder.patch(f"/appointments/{appointment.json()['id']}", {"status": "CANCELLED"}).status_code == 200
    shown = entry(patient, entry_id)["offer"]
    assert shown is not None and shown["slot_id"] == slots[0]  # the second is passed over
    # The hold expires (HOLD_MINUTES 0.25): the entry is offered the second slot.
    later = wait_for(lambda: (o := entry(patient, entry_id)["offer"]) and o["id"] != shown["id"] and o, 60)
    assert later and later["slot_id"] == slots[1], later

    for answer in ("accept", "decline"):
        late = patient.post(f"/waitlist/{entry_id}/{answer}", {"offer_id": shown["id"]})
        assert assert_problem(late, 409)["type"] == "/problems/offer-ended", late.text
    now = entry(patient, entry_id)
    assert (now["status"], now["offer"]["id"]) == ("OFFERED", later["id"])
    assert patient.get("/appointments").json()["items"] == []

    key = {"Idempotency-Key": f"accept-{entry_id}"}
    accepted = patient.post(f"/waitlist/{entry_id}/accept", {"offer_id": later["id"]}, headers=key)
    assert accepted.status_code == 200 and accepted.json()["slot_id"] == slots[1], accepted.text
    replay = patient.post(f"/waitlist/{entry_id}/accept", {"offer_id": later["id"]}, headers=key)
    assert (replay.status_code, replay.json()) == (200, accepted.json())
    assert_problem(patient.post(f"/waitlist/{entry_id}/accept", {"offer_id": shown["id"]}, headers=key), 422)
    assert_problem(patient.post(f"/waitlist/{entry_id}/accept", {"offer_id": shown["id"]}), 409)
    with database(stack.database_url or "") as conn:
        actions = [
            r[0] for r in conn.run("SELECT action FROM waitlist_events WHERE entry_id = :e ORDER BY id", e=entry_id)
        ]
        booked_rows = conn.run("SELECT slot_id FROM appointments WHERE patient_id = :p", p=patient.id)
    assert actions == ["JOINED", "OFFERED", "EXPIRED", "OFFERED", "ACCEPTED"]
    assert [str(r[0]) for r in booked_rows] == [slots[1]]


def test_joining_a_list_one_is_booked_on_in_the_range_is_409_and_changes_nothing(api: Api, stack: Stack) -> None:
    day = date.today() + timedelta(days=3)
    doctor, _slot, patient, appointment = booked_slot(api, day)
    body = {"doctor_id": str(doctor.id), "from": str(day - timedelta(days=1)), "to": str(day + timedelta(days=1))}
    refused = patient.post("/waitlist", body)
    problem = assert_problem(refused, 409)
    assert problem["type"] == "/problems/already-booked-in-range", problem
    assert f"on {day} at 10:00 (Europe/Berlin)" in problem["detail"] and "cancel it" in problem["detail"]
    # The front desk, for the patient: the same.
    admitted = api.admin().post("/waitlist", {**body, "patient_id": str(patient.id)})
    assert assert_problem(admitted, 409)["type"] == "/problems/already-booked-in-range"
    assert patient.get("/waitlist", params={"active": "false"}).json()["items"] == []
    with database(stack.database_url or "") as conn:
        assert conn.run("SELECT count(*) FROM waitlist_entries WHERE patient_id = :p", p=patient.id) == [[0]]
    # Once the appointment is cancelled, the list is worth joining.
    assert patient.patch(f"/appointments/{appointment}", {"status": "CANCELLED"}).status_code == 200
    joined = patient.post("/waitlist", body)
    assert joined.status_code == 201 and joined.json()["status"] == "WAITING", joined.text
