"""Races decided by the database, with real concurrency against the running stack.

Every request of a race has its own thread and its own HTTP session, and all of them
wait at a barrier so that they are in flight at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from functools import partial
from typing import Any

import requests

from local.stack import Stack
from tests.e2e.booking_support import assert_problem, book, database, free_slot_ids, register
from tests.e2e.client import Api, Caller


def race(calls: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Runs every call on its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], requests.Response]) -> requests.Response:
        barrier.wait(timeout=60)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def fresh_session(caller: Caller) -> Caller:
    """The caller with a session of its own (a connection pool per client)."""
    caller.session = requests.Session()
    caller.session.headers["Authorization"] = f"Bearer {caller.token}"
    return caller


def no_server_errors(responses: list[requests.Response]) -> None:
    errors = [(r.status_code, r.text[:300]) for r in responses if r.status_code >= 500]
    assert errors == [], errors


def test_200_patients_race_for_one_slot(api: Api, stack: Stack) -> None:
    doctor = api.doctor()
    day = date.today() + timedelta(days=5)
    slot = api.publish(doctor, day, "10:00", "10:30", 30)[0]["id"]
    patients = [fresh_session(api.patient()) for _ in range(200)]

    responses = race([(lambda p=p: p.post("/appointments", {"slot_id": slot, "reason": "race"})) for p in patients])

    no_server_errors(responses)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 199}, statuses
    for response in responses:
        if response.status_code == 409:
            assert assert_problem(response, 409)["type"] == "/problems/slot-taken"
    winner = next(r.json() for r in responses if r.status_code == 201)
    assert winner["slot_id"] == slot and winner["status"] == "BOOKED"
    winner_patient = next(p for p, r in zip(patients, responses, strict=True) if r.status_code == 201)
    assert winner["patient_id"] == str(winner_patient.id)
    assert slot not in free_slot_ids(api, doctor, day.isoformat(), day.isoformat())
    with database(stack.database_url or "") as conn:
        assert conn.run("SELECT count(*) FROM appointments WHERE slot_id = :s", s=slot) == [[1]]
        assert conn.run(
            """SELECT count(*) FROM audit_appointment AS a JOIN appointments AS p
                           ON p.id = a.appointment_id WHERE p.slot_id = :s""",
            s=slot,
        ) == [[1]]


def test_two_patients_move_to_the_same_slot_at_once(api: Api) -> None:
    doctor = api.doctor()
    day = date.today() + timedelta(days=6)
    slots = [s["id"] for s in api.publish(doctor, day, "07:00", "19:30", 5)]
    assert len(slots) == 150
    for round_number in range(50):
        own_a, own_b, target = slots[3 * round_number : 3 * round_number + 3]
        a, b = fresh_session(api.patient()), fresh_session(api.patient())
        first, second = book(a, own_a), book(b, own_b)
        started = time.monotonic()
        moved = race(
            [
                partial(a.patch, f"/appointments/{first['id']}", {"slot_id": target}),
                partial(b.patch, f"/appointments/{second['id']}", {"slot_id": target}),
            ]
        )
        assert time.monotonic() - started < 10, "a move waited on a lock for too long"
        no_server_errors(moved)
        assert sorted(r.status_code for r in moved) == [200, 409], [(r.status_code, r.text) for r in moved]
        winner_index = 0 if moved[0].status_code == 200 else 1
        loser, loser_before = (b, second) if winner_index == 0 else (a, first)
        assert assert_problem(moved[1 - winner_index], 409)["type"] == "/problems/slot-taken"
        winner = moved[winner_index].json()
        assert winner["slot_id"] == target and winner["status"] == "BOOKED"
        # The loser is exactly as it was.
        assert loser.get(f"/appointments/{loser_before['id']}").json() == loser_before
        assert target not in free_slot_ids(api, doctor, day.isoformat(), day.isoformat())


def test_two_patients_swap_slots_at_once_without_deadlock(api: Api) -> None:
    doctor = api.doctor()
    day = date.today() + timedelta(days=7)
    slots = [s["id"] for s in api.publish(doctor, day, "08:00", "10:00", 5)]
    for round_number in range(10):
        slot_a, slot_b = slots[2 * round_number : 2 * round_number + 2]
        a, b = fresh_session(api.patient()), fresh_session(api.patient())
        first, second = book(a, slot_a), book(b, slot_b)
        moved = race(
            [
                partial(a.patch, f"/appointments/{first['id']}", {"slot_id": slot_b}),
                partial(b.patch, f"/appointments/{second['id']}", {"slot_id": slot_a}),
            ]
        )
        no_server_errors(moved)
        # Each target is held by the other appointment: both refused, nothing changed.
        assert [r.status_code for r in moved] == [409, 409], [r.text for r in moved]
        assert a.get(f"/appointments/{first['id']}").json() == first
        assert b.get(f"/appointments/{second['id']}").json() == second


def test_20_retries_with_one_idempotency_key(api: Api, stack: Stack) -> None:
    doctor = api.doctor()
    day = date.today() + timedelta(days=8)
    slots = [s["id"] for s in api.publish(doctor, day, "09:00", "10:00", 30)]
    patient = api.patient()
    key = f"booking-{uuid.uuid4()}"
    body = {"slot_id": slots[0], "reason": "retried"}
    # Twenty clients of one caller (the same subject, so the same tokens' identity).
    clients = [fresh_session(api.caller("patient", patient.id)) for _ in range(20)]

    responses = race([(lambda c=c: c.post("/appointments", body, headers={"Idempotency-Key": key})) for c in clients])

    no_server_errors(responses)
    assert [r.status_code for r in responses] == [201] * 20, [(r.status_code, r.text) for r in responses]
    bodies: list[dict[str, Any]] = [r.json() for r in responses]
    assert all(r.content == responses[0].content for r in responses)  # byte for byte, not only equal JSON
    appointment_id = bodies[0]["id"]
    with database(stack.database_url or "") as conn:
        assert conn.run("SELECT count(*) FROM appointments WHERE patient_id = :p", p=patient.id) == [[1]]
        assert conn.run("SELECT count(*) FROM audit_appointment WHERE appointment_id = :a", a=appointment_id) == [[1]]
        assert conn.run("SELECT count(*) FROM idempotency_keys WHERE caller_id = :p", p=patient.id) == [[1]]
    audit = clients[0].get(f"/appointments/{appointment_id}/audit").json()["items"]
    assert [entry["action"] for entry in audit] == ["BOOKED"]

    # A later retry still replays; the same key with another body is refused.
    again = clients[0].post("/appointments", body, headers={"Idempotency-Key": key})
    assert (again.status_code, again.json()) == (201, bodies[0])
    other_body = clients[0].post(
        "/appointments", {"slot_id": slots[1], "reason": "retried"}, headers={"Idempotency-Key": key}
    )
    assert_problem(other_body, 422)
    changed_reason = clients[0].post("/appointments", {**body, "reason": "other"}, headers={"Idempotency-Key": key})
    assert_problem(changed_reason, 422)
    # Keys belong to their caller: another patient's same key is a request of its own.
    stranger = api.patient()
    theirs = stranger.post("/appointments", {"slot_id": slots[1]}, headers={"Idempotency-Key": key})
    assert theirs.status_code == 201 and theirs.json()["id"] != appointment_id
    with database(stack.database_url or "") as conn:
        assert conn.run("SELECT count(*) FROM appointments WHERE patient_id = :p", p=patient.id) == [[1]]


def test_concurrent_different_bodies_with_one_key(api: Api, stack: Stack) -> None:
    doctor = api.doctor()
    day = date.today() + timedelta(days=9)
    slots = [s["id"] for s in api.publish(doctor, day, "09:00", "14:00", 30)]
    patient = api.patient()
    key = f"mixed-{uuid.uuid4()}"
    clients = [fresh_session(api.caller("patient", patient.id)) for _ in range(10)]
    responses = race(
        [
            (lambda c=c, s=s: c.post("/appointments", {"slot_id": s}, headers={"Idempotency-Key": key}))
            for c, s in zip(clients, slots, strict=True)
        ]
    )
    no_server_errors(responses)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 422: 9}, statuses
    with database(stack.database_url or "") as conn:
        assert conn.run("SELECT count(*) FROM appointments WHERE patient_id = :p", p=patient.id) == [[1]]


def test_20_retries_of_a_move_with_one_idempotency_key(api: Api, stack: Stack) -> None:
    """A phone that lost the answer to a move sends it again: the first answer, one move."""
    doctor = api.doctor()
    day = date.today() + timedelta(days=10)
    slots = [s["id"] for s in api.publish(doctor, day, "09:00", "11:00", 30)]
    patient = api.patient()
    appointment = book(patient, slots[0])
    key = f"move-{uuid.uuid4()}"
    clients = [fresh_session(api.caller("patient", patient.id)) for _ in range(20)]
    path = f"/appointments/{appointment['id']}"

    responses = race(
        [(lambda c=c: c.patch(path, {"slot_id": slots[1]}, headers={"Idempotency-Key": key})) for c in clients]
    )

    no_server_errors(responses)
    assert [r.status_code for r in responses] == [200] * 20, [(r.status_code, r.text) for r in responses]
    assert all(r.content == responses[0].content for r in responses)  # byte for byte
    assert responses[0].json()["slot_id"] == slots[1]
    audit = clients[0].get(f"{path}/audit").json()["items"]
    assert [entry["action"] for entry in audit] == ["BOOKED", "RESCHEDULED"]

    # Retried later, the cancel is answered as the first time, not 409 "already cancelled".
    cancel_key = f"cancel-{uuid.uuid4()}"
    first = patient.patch(path, {"status": "CANCELLED"}, headers={"Idempotency-Key": cancel_key})
    again = patient.patch(path, {"status": "CANCELLED"}, headers={"Idempotency-Key": cancel_key})
    assert (first.status_code, again.status_code) == (200, 200) and again.content == first.content
    assert_problem(patient.patch(path, {"status": "CANCELLED"}), 409)  # without the key: a new request
    # A key answers only its own request: another body, another appointment, or a booking is 422.
    assert_problem(
        patient.patch(path, {"status": "CANCELLED", "reason": "x"}, headers={"Idempotency-Key": cancel_key}), 422
    )
    other = book(patient, slots[2])
    assert_problem(
        patient.patch(f"/appointments/{other['id']}", {"status": "CANCELLED"}, headers={"Idempotency-Key": cancel_key}),
        422,
    )
    assert_problem(patient.post("/appointments", {"slot_id": slots[3]}, headers={"Idempotency-Key": cancel_key}), 422)
    audit = patient.get(f"{path}/audit").json()["items"]
    assert [entry["action"] for entry in audit] == ["BOOKED", "RESCHEDULED", "CANCELLED"]


def test_one_patient_books_eight_doctors_at_the_same_time_at_once(api: Api, stack: Stack) -> None:
    """Eight bookings of one patient at one time, with eight doctors, all in flight at
    once: one 201 and seven 409s every time, never a 503. (Their exclusion-constraint
    checks deadlocked each other under load, more often than three tries could mend;
    now each booking takes its patient's turn: tests/integration/test_deadlocks.py.)"""
    day = date.today() + timedelta(days=11)
    doctors = [api.doctor(timezone="UTC") for _ in range(8)]
    slots = [[s["id"] for s in api.publish(d, day, "06:00", "12:00", 30)] for d in doctors]
    assert all(len(column) == 12 for column in slots)
    outcomes: Counter[int] = Counter()
    for k in range(12):
        patient = api.patient()
        if k % 2:
            register(patient)  # half of them known before, half made by their first booking
        clients = [fresh_session(api.caller("patient", patient.id)) for _ in doctors]
        responses = race(
            [
                (lambda c=c, s=column[k]: c.post("/appointments", {"slot_id": s}))
                for c, column in zip(clients, slots, strict=True)
            ]
        )
        no_server_errors(responses)
        outcomes.update(r.status_code for r in responses)
        assert sorted(r.status_code for r in responses) == [201] + [409] * 7, [r.text for r in responses]
        for response in responses:
            if response.status_code == 409:
                assert assert_problem(response, 409)["type"] == "/problems/overlapping-appointment"
        with database(stack.database_url or "") as conn:
            assert conn.run("SELECT count(*) FROM appointments WHERE patient_id = :p", p=patient.id) == [[1]]
            assert conn.run(
                """SELECT count(*) FROM audit_appointment AS a JOIN appointments AS p
                   ON p.id = a.appointment_id WHERE p.patient_id = :p""",
                p=patient.id,
            ) == [[1]]
    assert outcomes == {201: 12, 409: 84}
