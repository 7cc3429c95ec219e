"""Notifications end to end: the running stack, the Cloud Tasks and Pub/Sub emulators, the SMTP sink.

The stack runs with REMINDER_OFFSETS=24h,20s and the sweep every second (conftest.py).
Every test makes its own doctors and slots, and finds its mail by appointment id.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pg8000.native
import requests

from local import pubsub_emulator
from local.mailsink import read_all
from local.postgres import connect_native, port_open
from local.stack import Stack
from tests.e2e.client import Api, Caller
from tests.emulators import needs_gcloud


@contextmanager
def database(stack: Stack) -> Iterator[pg8000.native.Connection]:
    assert stack.database_url
    conn = connect_native(stack.database_url)
    try:
        yield conn
    finally:
        conn.close()


def mails(stack: Stack, appointment_id: str, kind: str | None = None) -> list[EmailMessage]:
    return [
        m
        for m in read_all(stack.state / "mail")
        if m["X-Clinic-Appointment"] == appointment_id and (kind is None or m["X-Clinic-Kind"] == kind)
    ]


def wait_for_mail(
    stack: Stack, appointment_id: str, kind: str, count: int = 1, timeout: float = 30.0
) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = mails(stack, appointment_id, kind)
        if len(found) >= count:
            return found
        time.sleep(0.2)
    return mails(stack, appointment_id, kind)


def book(patient: Caller, slot_id: str) -> str:
    response = patient.post("/appointments", {"slot_id": slot_id})
    assert response.status_code == 201, response.text
    appointment_id: str = response.json()["id"]
    return appointment_id


def task_payload(stack: Stack, appointment_id: str, kind: str) -> dict[str, Any]:
    with database(stack) as db:
        rows = db.run(
            "SELECT payload FROM outbox WHERE appointment_id = :a AND target = 'TASK' "
            "AND payload->>'kind' = :k ORDER BY id DESC LIMIT 1",
            a=appointment_id,
            k=kind,
        )
    payload: dict[str, Any] = rows[0][0]
    return payload


def notifications(stack: Stack, appointment_id: str) -> list[tuple[Any, ...]]:
    with database(stack) as db:
        return [
            tuple(r)
            for r in db.run(
                "SELECT kind, status, attempts FROM notifications WHERE appointment_id = :a ORDER BY id",
                a=appointment_id,
            )
        ]


def deliver(stack: Stack, payload: dict[str, Any], retry: int = 0) -> requests.Response:
    """What Cloud Tasks does: POST the task's body to the notify function."""
    return requests.post(
        f"{stack.url('notify')}/tasks/notify",
        json=payload,
        timeout=30,
        headers={"X-CloudTasks-TaskRetryCount": str(retry)},
    )


@contextmanager
def stopped(stack: Stack, name: str) -> Iterator[None]:
    """The service is down inside the block and back (listening) after it."""
    service = stack.find(name)
    stack.stop_service(service)
    assert service.port is not None and not port_open(service.port)
    try:
        yield
    finally:
        stack.spawn(service)
        deadline = time.monotonic() + 30
        while not port_open(service.port):
            assert time.monotonic() < deadline, f"{name} did not come back"
            time.sleep(0.1)


def test_a_booking_sends_exactly_one_confirmation(stack: Stack, api: Api) -> None:
    doctor = api.doctor(timezone="America/Chicago")
    patient = api.patient()
    appointment_id = book(patient, api.publish(doctor)[0]["id"])

    [confirmation] = wait_for_mail(stack, appointment_id, "CONFIRMATION")
    assert confirmation["To"] == patient.email
    assert "09:00" in confirmation["Subject"]  # the doctor's local time
    assert any(p.get_content_type() == "text/calendar" for p in confirmation.walk())
    time.sleep(2)  # deliveries and sweeps go on: still one
    assert len(mails(stack, appointment_id)) == 1
    assert notifications(stack, appointment_id) == [("CONFIRMATION", "SENT", 1)]


def _soon_window(seconds_ahead: int) -> tuple[str, str, str, str]:
    """A zone and a same-day window in it starting on the first whole minute at least
    `seconds_ahead` from now (timezone, date, start, end)."""
    earliest = datetime.now(UTC) + timedelta(seconds=seconds_ahead)
    first_minute = earliest.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for zone in ("UTC", "Asia/Tokyo"):
        start = first_minute.astimezone(ZoneInfo(zone))
        end = start + timedelta(minutes=15)
        if end.date() == start.date():
            return zone, start.date().isoformat(), start.strftime("%H:%M"), end.strftime("%H:%M")
    raise AssertionError("unreachable: the two zones are nine hours apart")


def test_one_reminder_and_none_for_a_cancelled_or_moved_booking(stack: Stack, api: Api) -> None:
    zone, day, start, end = _soon_window(45)
    booked = {}
    for name in ("kept", "cancelled", "moved"):
        doctor = api.doctor(timezone=zone)
        response = doctor.post(
            f"/doctors/{doctor.id}/slots", {"date": day, "start": start, "end": end, "slot_minutes": 5}
        )
        assert response.status_code == 201, response.text
        slots = response.json()["items"]
        patient = api.patient()
        booked[name] = (patient, book(patient, slots[0]["id"]), slots)
    first_start = booked["kept"][2][0]["start_time"]
    patient, appointment_id, _ = booked["cancelled"]
    assert patient.patch(f"/appointments/{appointment_id}", {"status": "CANCELLED"}).status_code == 200
    patient, appointment_id, slots = booked["moved"]
    assert patient.patch(f"/appointments/{appointment_id}", {"slot_id": slots[1]["id"]}).status_code == 200

    # Due 20 s before the visit; the emulator delivers it at that time.
    due = datetime.fromisoformat(first_start) - timedelta(seconds=20)
    assert due > datetime.now(UTC), "the setup took too long"
    reminders = wait_for_mail(stack, booked["kept"][1], "REMINDER", timeout=120)
    assert len(reminders) == 1
    assert datetime.now(UTC) >= due - timedelta(seconds=1), "a reminder must not come early"
    time.sleep(3)
    assert len(mails(stack, booked["kept"][1], "REMINDER")) == 1
    assert mails(stack, booked["cancelled"][1], "REMINDER") == []
    assert mails(stack, booked["moved"][1], "REMINDER") == []  # the new time's is 5 minutes later
    assert len(wait_for_mail(stack, booked["cancelled"][1], "CANCELLATION")) == 1
    assert len(wait_for_mail(stack, booked["moved"][1], "RESCHEDULED")) == 1


def deliver_at_once(stack: Stack, payload: dict[str, Any], times: int) -> list[tuple[int, str]]:
    results: list[tuple[int, str]] = []
    start = threading.Barrier(times)

    def one() -> None:
        start.wait()
        response = deliver(stack, payload)
        results.append((response.status_code, response.json()["result"]))

    threads = [threading.Thread(target=one) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(results)


def test_the_same_task_delivered_twice_sends_one_email(stack: Stack, api: Api) -> None:
    # The reminders of a visit three days ahead wait in the queue: deliver one ourselves.
    appointment_id = book(api.patient(), api.publish(api.doctor())[0]["id"])
    reminder = task_payload(stack, appointment_id, "REMINDER")
    first, second = deliver(stack, reminder), deliver(stack, reminder, retry=1)
    assert (first.status_code, first.json()["result"]) == (200, "sent")
    assert (second.status_code, second.json()["result"]) == (200, "duplicate")
    assert deliver_at_once(stack, reminder, 6) == [(200, "duplicate")] * 6
    assert len(mails(stack, appointment_id, "REMINDER")) == 1

    # A message not sent yet, delivered six times at once: exactly one goes out.
    other = book(api.patient(), api.publish(api.doctor())[0]["id"])
    assert deliver_at_once(stack, task_payload(stack, other, "REMINDER"), 6) == (
        [(200, "duplicate")] * 5 + [(200, "sent")]
    )
    assert len(mails(stack, other, "REMINDER")) == 1
    assert [n for n in notifications(stack, other) if n[0] == "REMINDER"] == [("REMINDER", "SENT", 1)]


def _logged(stack: Stack, service: str, text: str, key: str) -> bool:
    path: Path = stack.log_dir / f"{service}.log"
    return any(text in line and key in line for line in path.read_text(errors="replace").splitlines())


def test_smtp_down_is_retried_and_a_message_that_keeps_failing_ends_failed(stack: Stack, api: Api) -> None:
    doctor = api.doctor()
    slots = api.publish(doctor)
    waiting = api.publish(api.doctor())[0]
    with stopped(stack, "smtp"):
        appointment_id = book(api.patient(), slots[0]["id"])
        key = task_payload(stack, appointment_id, "CONFIRMATION")["message_key"]
        deadline = time.monotonic() + 20
        while not _logged(stack, "notify", "mail relay unavailable", key):
            assert time.monotonic() < deadline, "Cloud Tasks never delivered the confirmation"
            time.sleep(0.2)
        assert mails(stack, appointment_id) == []
        # What Cloud Tasks sees: 503 (retry); on the queue's last attempt, 200 and FAILED.
        doomed = book(api.patient(), waiting["id"])
        reminder = task_payload(stack, doomed, "REMINDER")
        response = deliver(stack, reminder, retry=0)
        assert response.status_code == 503
        assert response.headers["Content-Type"] == "application/problem+json"
        last = deliver(stack, reminder, retry=7)  # TASKS_MAX_ATTEMPTS is 8
        assert (last.status_code, last.json()["result"]) == (200, "failed")
        assert ("REMINDER", "FAILED", 8) in notifications(stack, doomed)
    # SMTP is back: the queue's next attempt delivers the confirmation, once.
    [confirmation] = wait_for_mail(stack, appointment_id, "CONFIRMATION", timeout=30)
    assert confirmation["X-Clinic-Message-Key"].strip() == key
    sent = [n for n in notifications(stack, appointment_id) if n[:2] == ("CONFIRMATION", "SENT")]
    assert len(sent) == 1 and sent[0][2] >= 2  # sent on a retry
    time.sleep(2)
    assert len(mails(stack, appointment_id, "CONFIRMATION")) == 1


def test_cloud_tasks_down_during_a_booking_the_sweep_sends_it_later(stack: Stack, api: Api) -> None:
    doctor = api.doctor()
    slot = api.publish(doctor)[0]
    with stopped(stack, "tasks"):
        started = time.monotonic()
        appointment_id = book(api.patient(), slot["id"])
        assert time.monotonic() - started < 5, "a booking must not wait long for Cloud Tasks"
        with database(stack) as db:
            row = db.run(
                "SELECT dispatched_at, attempts, last_error FROM outbox WHERE appointment_id = :a "
                "AND target = 'TASK' AND payload->>'kind' = 'CONFIRMATION'",
                a=appointment_id,
            )[0]
        assert row[0] is None and row[1] >= 1 and row[2]
        time.sleep(2)  # sweeps run meanwhile and fail too
        assert mails(stack, appointment_id) == []
    [confirmation] = wait_for_mail(stack, appointment_id, "CONFIRMATION", timeout=30)
    assert confirmation["X-Clinic-Kind"] == "CONFIRMATION"
    with database(stack) as db:
        pending = db.run(
            "SELECT count(*) FROM outbox WHERE appointment_id = :a AND dispatched_at IS NULL", a=appointment_id
        )[0][0]
    assert pending == 0
    time.sleep(2)
    assert len(mails(stack, appointment_id)) == 1


def _pull(host: str, subscription: str, appointment_id: str, count: int, timeout: float = 20.0) -> list[Any]:
    from local.events import pull

    found: list[Any] = []
    deadline = time.monotonic() + timeout
    for event in pull(host, subscription, wait=timeout):
        if event["appointment_id"] == appointment_id:
            found.append(event)
        if len(found) >= count or time.monotonic() > deadline:
            break
    return found


@needs_gcloud
def test_each_change_is_one_event_in_order(stack: Stack, api: Api) -> None:
    host = stack.env()["PUBSUB_EMULATOR_HOST"]
    subscription = f"projects/{pubsub_emulator.PROJECT}/subscriptions/e2e-{uuid.uuid4().hex[:10]}"
    pubsub_emulator.ensure_topic(host, subscriptions=(subscription,))
    doctor = api.doctor()
    slots = api.publish(doctor)
    patient = api.patient()
    appointment_id = book(patient, slots[0]["id"])
    assert patient.patch(f"/appointments/{appointment_id}", {"slot_id": slots[1]["id"]}).status_code == 200
    assert patient.patch(f"/appointments/{appointment_id}", {"status": "CANCELLED"}).status_code == 200

    events = _pull(host, subscription, appointment_id, 3)
    assert [e["type"] for e in events] == ["appointment.booked", "appointment.rescheduled", "appointment.cancelled"]
    assert {e["ordering_key"] for e in events} == {appointment_id}
    assert [e["event"]["appointment"]["status"] for e in events] == ["BOOKED", "BOOKED", "CANCELLED"]
    assert len({e["audit_id"] for e in events}) == 3
    time.sleep(3)  # sweeps go on; nothing is published twice
    assert _pull(host, subscription, appointment_id, 1, timeout=2) == []

    # `clinic events` shows them to a developer.
    shown = subprocess.run(
        [sys.executable, "-m", "local.cli", "events", "--host", host, "--wait", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        env=stack.env(),
    )
    assert shown.returncode == 0, shown.stderr
    lines = [line for line in shown.stdout.splitlines() if appointment_id in line]
    assert [line.split()[0] for line in lines] == [
        "appointment.booked",
        "appointment.rescheduled",
        "appointment.cancelled",
    ]
    assert all(f"ordering_key={appointment_id}" in line for line in lines)
