"""Helpers for the booking e2e tests: problem+json checks and direct access to the stack's database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pg8000.native
import requests

from local.postgres import connect_native
from tests.e2e.client import Api, Caller

PROBLEM = "application/problem+json"


def assert_problem(response: requests.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].split(";")[0] == PROBLEM, response.headers
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


@contextmanager
def database(url: str) -> Iterator[pg8000.native.Connection]:
    conn = connect_native(url)
    try:
        yield conn
    finally:
        conn.close()


def register(patient: Caller) -> None:
    response = patient.post("/patients", {})
    assert response.status_code in (200, 201), response.text


def started_appointment(db_url: str, doctor: Caller, patient: Caller, minutes_ago: int = 10) -> str:
    """A BOOKED appointment whose slot started `minutes_ago`: written the way the book
    function writes it (appointment and audit row in one transaction), since the API
    rightly refuses to publish or book the past."""
    register(patient)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)
    with database(db_url) as conn:
        conn.run("BEGIN")
        slot_id = conn.run(
            "INSERT INTO slots (doctor_id, start_time, end_time) VALUES (:d, :s, :e) RETURNING id",
            d=doctor.id,
            s=start,
            e=start + timedelta(minutes=30),
        )[0][0]
        appointment_id = conn.run(
            """
            INSERT INTO appointments (slot_id, patient_id, doctor_id, start_time, end_time)
            VALUES (:slot, :patient, :doctor, :s, :e) RETURNING id""",
            slot=slot_id,
            patient=patient.id,
            doctor=doctor.id,
            s=start,
            e=start + timedelta(minutes=30),
        )[0][0]
        conn.run(
            """
            INSERT INTO audit_appointment (appointment_id, action, to_status, actor_id, details)
            VALUES (:a, 'BOOKED', 'BOOKED', :actor, '{}')""",
            a=appointment_id,
            actor=patient.id,
        )
        conn.run("COMMIT")
    return str(appointment_id)


def past_slot(db_url: str, doctor: Caller, minutes_ago: int = 60) -> str:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)
    with database(db_url) as conn:
        rows = conn.run(
            "INSERT INTO slots (doctor_id, start_time, end_time) VALUES (:d, :s, :e) RETURNING id",
            d=doctor.id,
            s=start,
            e=start + timedelta(minutes=30),
        )
    return str(rows[0][0])


def book(patient: Caller, slot_id: str, **extra: Any) -> dict[str, Any]:
    response = patient.post("/appointments", {"slot_id": slot_id, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def free_slot_ids(api: Api, doctor: Caller, start: str, end: str) -> list[str]:
    response = api.get(f"/doctors/{doctor.id}/slots", params={"from": start, "to": end, "page_size": 1000})
    assert response.status_code == 200, response.text
    assert response.json()["next_page_token"] is None
    return [item["id"] for item in response.json()["items"]]


def new_id() -> str:
    return str(uuid.uuid4())
