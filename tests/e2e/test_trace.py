"""One booking followed end to end (issue 17 §2): the running stack's book and notify log
files, the Pub/Sub event and the email all carry the trace of the request that booked.

The trace is read as Cloud Logging reads it, from each JSON line's
`logging.googleapis.com/trace` (projects/PROJECT/traces/ID, or the bare id where no
project is set, as locally).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from local import pubsub_emulator
from local.stack import Stack
from tests.e2e.client import Api
from tests.e2e.test_notifications import book, wait_for_mail
from tests.emulators import needs_gcloud

TRACE_FIELD = "logging.googleapis.com/trace"


def log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
    return lines


def trace_of(line: dict[str, Any]) -> str | None:
    value = line.get(TRACE_FIELD)
    return str(value).rsplit("/", 1)[-1] if value else None


def wait_for_line(path: Path, appointment_id: str, message: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [
            line
            for line in log_lines(path)
            if line.get("appointment_id") == appointment_id and line.get("message") == message
        ]
        if found or time.monotonic() > deadline:
            assert found, f"no {message!r} line for {appointment_id} in {path}"
            return found[-1]
        time.sleep(0.2)


def subscribe(stack: Stack) -> tuple[str, str]:
    host = f"127.0.0.1:{stack.ports.pubsub}"
    name = f"projects/{pubsub_emulator.PROJECT}/subscriptions/trace-{uuid.uuid4().hex[:12]}"
    pubsub_emulator.ensure_topic(host, subscriptions=(name,))
    return host, name


def event_of(host: str, subscription: str, appointment_id: str) -> dict[str, Any]:
    from local.events import pull

    for event in pull(host, subscription, wait=15.0):
        if event["appointment_id"] == appointment_id:
            return event
    raise AssertionError(f"no event for {appointment_id}")


@needs_gcloud
def test_the_trace_a_booking_brings_reaches_notify_the_event_and_the_email(stack: Stack, api: Api) -> None:
    trace = uuid.uuid4().hex
    host, subscription = subscribe(stack)
    doctor, patient = api.doctor(), api.patient()
    slot_id = api.publish(doctor)[0]["id"]
    response = patient.post(
        "/appointments", {"slot_id": slot_id}, headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
    )
    assert response.status_code == 201, response.text
    appointment_id = response.json()["id"]

    booked = wait_for_line(stack.log_dir / "book.log", appointment_id, "outbox dispatched")
    assert trace_of(booked) == trace
    assert booked["failed"] == 0 and booked["sent"] == len(booked["outbox_ids"]) >= 3  # notices, reminders, event
    [email] = wait_for_mail(stack, appointment_id, "CONFIRMATION")
    assert email["X-Clinic-Trace"] == trace
    sent = wait_for_line(stack.log_dir / "notify.log", appointment_id, "sent")
    assert trace_of(sent) == trace and sent["kind"] == "CONFIRMATION"
    event = event_of(host, subscription, appointment_id)
    assert event["type"] == "appointment.booked" and event["attributes"]["traceparent"].split("-")[1] == trace


def test_a_booking_without_a_trace_gets_one_that_its_email_shares(stack: Stack, api: Api) -> None:
    """As behind Google's front end, the gateway starts a trace for a request that has
    none: book's line and notify's line for one booking carry the same one, as does the email."""
    doctor, patient = api.doctor(), api.patient()
    appointment_id = book(patient, api.publish(doctor)[0]["id"])

    booked = wait_for_line(stack.log_dir / "book.log", appointment_id, "outbox dispatched")
    trace = trace_of(booked)
    assert trace is not None and len(trace) == 32
    [email] = wait_for_mail(stack, appointment_id, "CONFIRMATION")
    sent = wait_for_line(stack.log_dir / "notify.log", appointment_id, "sent")
    assert trace_of(sent) == trace == email["X-Clinic-Trace"]
    # Another booking is another trace.
    other = book(api.patient(), api.publish(api.doctor())[0]["id"])
    assert trace_of(wait_for_line(stack.log_dir / "book.log", other, "outbox dispatched")) != trace
