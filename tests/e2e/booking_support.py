"""Helpers for the booking e2e tests: problem+json checks and direct access to the stack's database."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pg8000.native
import requests
import yaml

from local.postgres import connect_native
from tests.e2e.client import Api, Caller

PROBLEM = "application/problem+json"


OPENAPI = Path(__file__).resolve().parents[2] / "infra" / "terraform" / "openapi.yaml"
# A URI or headers too long for the gateway: its own limits, for any request, before any
# operation is chosen (README, "The API"); openapi.yaml describes operations.
GATEWAY_LIMITS = frozenset({414, 431})


@cache
def _operations() -> list[tuple[str, re.Pattern[str], frozenset[int]]]:
    """(method, path pattern, documented statuses) of every operation in openapi.yaml."""
    spec = yaml.safe_load(OPENAPI.read_text())
    found = []
    for template, operations in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}/]+\}", "[^/]+", template) + "/?$")
        for method, operation in operations.items():
            if isinstance(operation, dict) and "responses" in operation:
                found.append((method.upper(), pattern, frozenset(int(code) for code in operation["responses"])))
    return found


def documented_statuses(method: str, path: str) -> frozenset[int] | None:
    """What openapi.yaml says this request may answer; None for a request it does not describe."""
    for op_method, pattern, statuses in _operations():
        if op_method == method and pattern.match(path):
            return statuses
    return None


def assert_problem(response: requests.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with this status, which openapi.yaml lists for the operation
    (when the request is one it describes); returns its body."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    method, path = response.request.method or "", urlsplit(response.request.url or "").path
    documented = documented_statuses(method, path)
    if documented is not None and status not in GATEWAY_LIMITS:
        assert status in documented, f"{method} {path} answered {status}: not in openapi.yaml"
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
