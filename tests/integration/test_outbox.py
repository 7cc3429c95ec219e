"""The outbox against real PostgreSQL, the real Cloud Tasks emulator and the Pub/Sub emulator.

after_commit dispatches a change's rows and marks them; what fails stays for the sweep;
reminders beyond Cloud Tasks' 30-day horizon wait until within it (the clock is
moved, not waited for); a second dispatch is harmless; events keep their order.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pg8000.native
import pytest

from local import pubsub_emulator
from local.postgres import connect_native
from shared import dispatch, logs
from shared.settings import get_settings
from tests.emulators import Recorder, cloud_tasks, free_port, needs_gcloud, pubsub
from tests.helpers import state_dir
from tests.integration import notify_support as data
from tests.log_lines import captured

QUEUE = "projects/clinic-local/locations/us-central1/queues/notify"


@pytest.fixture(scope="module")
def tasks_host() -> Iterator[str]:
    with cloud_tasks(state_dir("emulators")) as host:
        yield host


@pytest.fixture(scope="module")
def pubsub_emulator_host() -> Iterator[str | None]:
    """None where gcloud is not installed: events then wait in the outbox."""
    if pubsub_emulator.gcloud() is None:
        yield None
        return
    with pubsub(state_dir("emulators")) as host:
        yield host


@pytest.fixture
def pubsub_host(pubsub_emulator_host: str | None) -> str:
    # Only tests marked needs_gcloud take this fixture.
    assert pubsub_emulator_host is not None
    return pubsub_emulator_host


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as endpoint:
        yield endpoint


@pytest.fixture
def queues(
    database_url: str, tasks_host: str, pubsub_emulator_host: str | None, recorder: Recorder
) -> Iterator[Recorder]:
    """Cloud Tasks -> the recorder, events -> the Pub/Sub emulator, 24h reminders."""
    with data.environment(
        TASKS_EMULATOR_HOST=tasks_host,
        TASKS_QUEUE=QUEUE,
        NOTIFY_URL=recorder.url,
        PUBSUB_EMULATOR_HOST=pubsub_emulator_host,
        PUBSUB_TOPIC=pubsub_emulator.TOPIC if pubsub_emulator_host else None,
        REMINDER_OFFSETS="24h",
        TASKS_SERVICE_ACCOUNT=None,
    ):
        yield recorder


def events_configured() -> bool:
    return get_settings().pubsub_topic is not None


def rows(sql: pg8000.native.Connection, appointment_id: uuid.UUID) -> list[dict[str, Any]]:
    result = sql.run(
        "SELECT id, target, name, payload, deliver_at, dispatched_at, attempts, last_error "
        "FROM outbox WHERE appointment_id = :a ORDER BY id",
        a=appointment_id,
    )
    names = [c["name"] for c in sql.columns]
    return [dict(zip(names, row, strict=True)) for row in result]


def subscribe(host: str) -> str:
    name = f"projects/{pubsub_emulator.PROJECT}/subscriptions/test-{uuid.uuid4().hex[:12]}"
    pubsub_emulator.ensure_topic(host, subscriptions=(name,))
    return name


def pull_events(host: str, subscription: str, expect: int, timeout: float = 15.0) -> list[Any]:
    from local.events import pull

    events = []
    deadline = time.monotonic() + timeout
    for event in pull(host, subscription, wait=2.0 if expect == 0 else timeout):
        events.append(event)
        if (len(events) >= expect and expect > 0) or time.monotonic() > deadline:
            break
    return events


def emulator_tasks(host: str) -> dict[str, Any]:
    """Name -> task, of what the emulator still holds (not yet delivered)."""
    import grpc
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(host)))
    return {task.name.rsplit("/", 1)[-1]: task for task in client.list_tasks(parent=QUEUE)}


@needs_gcloud
def test_after_commit_sends_each_row_once_and_marks_it(
    queues: Recorder, pubsub_host: str, tasks_host: str, sql: pg8000.native.Connection
) -> None:
    subscription = subscribe(pubsub_host)
    doctor = data.doctor()
    slot = data.slots(doctor, data.in_days(3))[0]
    appointment_id, outbox_ids = data.book(data.patient(), slot)
    assert {r["target"] for r in rows(sql, appointment_id)} == {"TASK", "EVENT"}
    assert all(r["dispatched_at"] is None for r in rows(sql, appointment_id))

    dispatch.after_commit(outbox_ids)

    stored = rows(sql, appointment_id)
    assert all(r["dispatched_at"] is not None and r["attempts"] == 1 for r in stored)
    confirmation = next(r for r in stored if "-confirmation-" in r["name"])
    reminder = next(r for r in stored if "-reminder-" in r["name"])
    # The confirmation is delivered now, to NOTIFY_URL, with its payload and Cloud Tasks' headers.
    delivered = queues.wait_for(1)
    assert len(delivered) == 1
    assert delivered[0]["body"] == confirmation["payload"]
    assert delivered[0]["headers"]["x-cloudtasks-taskname"] == confirmation["name"]
    assert delivered[0]["headers"]["x-cloudtasks-taskretrycount"] == "0"
    assert delivered[0]["headers"]["content-type"] == "application/json"
    # The reminder waits in the queue for its time (a day before the visit).
    held = emulator_tasks(tasks_host)[reminder["name"]]
    assert held.schedule_time == reminder["deliver_at"]
    # One domain event, ordered by the appointment.
    events = pull_events(pubsub_host, subscription, expect=1)
    assert [(e["type"], e["ordering_key"]) for e in events] == [("appointment.booked", str(appointment_id))]
    assert events[0]["event"]["audit_id"] and events[0]["event"]["appointment"]["status"] == "BOOKED"


def test_dispatching_again_is_harmless(queues: Recorder, sql: pg8000.native.Connection) -> None:
    doctor = data.doctor()
    appointment_id, outbox_ids = data.book(data.patient(), data.slots(doctor, data.in_days(3))[0])
    dispatch.after_commit(outbox_ids)
    assert len(queues.wait_for(1)) == 1
    # As if the mark had been lost: the sweep sends the tasks again under the same names.
    sql.run("UPDATE outbox SET dispatched_at = NULL WHERE appointment_id = :a AND target = 'TASK'", a=appointment_id)
    counts = dispatch.sweep()
    assert counts["tasks"] >= 2 and counts["failed"] == 0
    assert all(r["dispatched_at"] is not None for r in rows(sql, appointment_id) if r["target"] == "TASK")
    time.sleep(1.5)
    assert len(queues.requests) == 1, "Cloud Tasks refuses a second task with the same name"


def test_an_unreachable_queue_leaves_rows_for_the_sweep(
    queues: Recorder, tasks_host: str, sql: pg8000.native.Connection
) -> None:
    doctor = data.doctor()
    slot = data.slots(doctor, data.in_days(3))[0]
    with data.environment(TASKS_EMULATOR_HOST=f"127.0.0.1:{free_port()}"):
        appointment_id, outbox_ids = data.book(data.patient(), slot)
        started = time.monotonic()
        dispatch.after_commit(outbox_ids)  # must not raise: the booking has committed
        assert time.monotonic() - started < dispatch.CREATE_TASK_TIMEOUT_S + 1
    stored = rows(sql, appointment_id)
    tasks = [r for r in stored if r["target"] == "TASK"]
    # Both were tried at once (decision 0014) and failed; both are left to the sweep.
    assert len(tasks) == 2
    assert all(r["dispatched_at"] is None and r["attempts"] == 1 and r["last_error"] for r in tasks)
    if events_configured():  # the event went to Pub/Sub, which was up
        assert next(r for r in stored if r["target"] == "EVENT")["dispatched_at"] is not None
    assert queues.requests == []

    counts = dispatch.sweep()
    assert counts["tasks"] == 2 and counts["failed"] == 0
    assert all(r["dispatched_at"] is not None for r in rows(sql, appointment_id) if r["target"] == "TASK")
    assert [r["body"]["kind"] for r in queues.wait_for(1)] == ["CONFIRMATION"]


def test_a_reminder_beyond_30_days_waits_until_within_them(
    queues: Recorder, tasks_host: str, sql: pg8000.native.Connection
) -> None:
    doctor = data.doctor("UTC")
    appointment_id, outbox_ids = data.book(data.patient(), data.slots(doctor, data.in_days(46))[0])
    dispatch.after_commit(outbox_ids)
    reminder = next(r for r in rows(sql, appointment_id) if "-reminder-" in r["name"])
    assert reminder["deliver_at"] > datetime.now(UTC) + timedelta(days=44)
    assert reminder["dispatched_at"] is None and reminder["attempts"] == 0
    assert reminder["name"] not in emulator_tasks(tasks_host)

    now = datetime.now(UTC)
    assert dispatch.sweep()["tasks"] == 0
    assert dispatch.sweep(now=now + timedelta(days=14))["tasks"] == 0  # still 31 days ahead
    counts = dispatch.sweep(now=now + timedelta(days=16))
    assert counts["tasks"] == 1 and counts["failed"] == 0
    assert dispatch.sweep(now=now + timedelta(days=17))["tasks"] == 0
    reminder = next(r for r in rows(sql, appointment_id) if "-reminder-" in r["name"])
    assert reminder["dispatched_at"] is not None and reminder["attempts"] == 1
    held = emulator_tasks(tasks_host)[reminder["name"]]
    assert held.schedule_time == reminder["deliver_at"]
    assert json.loads(held.http_request.body)["kind"] == "REMINDER"


def test_unconfigured_queues_leave_rows_waiting(database_url: str, sql: pg8000.native.Connection) -> None:
    with data.environment(TASKS_QUEUE=None, PUBSUB_TOPIC=None, NOTIFY_URL=None):
        doctor = data.doctor()
        appointment_id, outbox_ids = data.book(data.patient(), data.slots(doctor, data.in_days(3))[0])
        dispatch.after_commit(outbox_ids)
        counts = dispatch.sweep()
    assert counts["tasks"] == counts["events"] == counts["failed"] == 0
    assert counts["pending_tasks"] == 2 and counts["pending_events"] == 1
    assert all(r["dispatched_at"] is None and r["attempts"] == 0 for r in rows(sql, appointment_id))


def test_the_sweep_logs_how_long_due_rows_have_waited(database_url: str, sql: pg8000.native.Connection) -> None:
    """The outbox-age alert reads `oldest_due_age_s` and `due` from the sweep's log line.
    Nothing is sent (no queue configured), so only the clock moves the figures."""
    with data.environment(TASKS_QUEUE=None, PUBSUB_TOPIC=None, NOTIFY_URL=None, REMINDER_OFFSETS="24h"):
        now = datetime.now(UTC)
        # Measured at the same clock, so rows of other tests that come due meanwhile count in both.
        before = dispatch.sweep(now=now + timedelta(minutes=10))["due"]
        doctor = data.doctor("UTC")
        appointment_id, _ = data.book(data.patient(), data.slots(doctor, data.in_days(46))[0])
        with captured("clinic.dispatch") as lines:
            counts = dispatch.sweep(now=now + timedelta(minutes=10))
        # The confirmation and the event are due; the reminder, 45 days ahead, is not yet.
        assert counts["due"] == before + 2
        assert counts["oldest_due_age_s"] >= 590  # booked just after `now`
        later = dispatch.sweep(now=now + timedelta(days=16))  # the reminder came within 30 days
    assert later["due"] >= counts["due"] + 1
    [line] = [line for line in lines if line["message"] == "outbox swept"]
    assert line["due"] == counts["due"] and line["oldest_due_age_s"] == counts["oldest_due_age_s"]
    assert all(r["dispatched_at"] is None for r in rows(sql, appointment_id))


@needs_gcloud
def test_events_held_back_by_an_outage_go_out_in_order(
    queues: Recorder, pubsub_host: str, sql: pg8000.native.Connection
) -> None:
    subscription = subscribe(pubsub_host)
    doctor = data.doctor()
    first, second = data.slots(doctor, data.in_days(4))[:2]
    who = data.patient()
    with data.environment(PUBSUB_EMULATOR_HOST=f"127.0.0.1:{free_port()}"):
        appointment_id, booked = data.book(who, first)
        dispatch.after_commit(booked)
        moved = data.change(who, appointment_id, slot_id=second)
        dispatch.after_commit(moved)
        cancelled = data.change(who, appointment_id, status="CANCELLED")
        dispatch.after_commit(cancelled)
    events = [r for r in rows(sql, appointment_id) if r["target"] == "EVENT"]
    assert len(events) == 3 and all(r["dispatched_at"] is None for r in events)
    # Only the oldest was tried; the later ones wait behind it.
    assert [r["attempts"] for r in events] == [1, 0, 0]

    # The two later events were never tried: the sweep takes them once they are SETTLE old.
    assert dispatch.sweep()["events"] == 1
    counts = dispatch.sweep(settle=timedelta(0))
    assert counts["events"] == 2 and counts["failed"] == 0
    received = pull_events(pubsub_host, subscription, expect=3)
    assert [e["type"] for e in received] == ["appointment.booked", "appointment.rescheduled", "appointment.cancelled"]
    assert {e["ordering_key"] for e in received} == {str(appointment_id)}
    assert pull_events(pubsub_host, subscription, expect=0) == []


def test_concurrent_sweeps_send_each_row_once(queues: Recorder, sql: pg8000.native.Connection) -> None:
    doctor = data.doctor()
    slot_ids = data.slots(doctor, data.in_days(5), "08:00", "13:00", 30)
    with data.environment(TASKS_QUEUE=None, PUBSUB_TOPIC=None):
        for slot in slot_ids:
            data.book(data.patient(), slot)
    totals: list[dict[str, int]] = []

    def run() -> None:
        totals.append(dispatch.sweep(limit=3, settle=timedelta(0)))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(t["tasks"] for t in totals) == 2 * len(slot_ids)
    assert sum(t["events"] for t in totals) == (len(slot_ids) if events_configured() else 0)
    delivered = queues.wait_for(len(slot_ids))
    keys = [r["body"]["message_key"] for r in delivered]
    assert len(keys) == len(slot_ids) == len(set(keys))


def test_a_cancel_does_not_wait_for_a_sweep_that_is_sending(database_url: str, sql: pg8000.native.Connection) -> None:
    """A row the sweep holds (its FOR UPDATE while it calls Cloud Tasks) is left to it;
    the others are dropped with the change, and nothing waits."""
    with data.environment(TASKS_QUEUE=None, PUBSUB_TOPIC=None):
        who = data.patient()
        appointment_id, _ = data.book(who, data.slots(data.doctor(), data.in_days(3))[0])
        tasks = [r["id"] for r in rows(sql, appointment_id) if r["target"] == "TASK"]
        assert len(tasks) == 2  # the confirmation and the 24h reminder
        sweep = connect_native(database_url)
        try:
            sweep.run("BEGIN")
            sweep.run("SET lock_timeout = '1s'")
            sweep.run("SELECT id FROM outbox WHERE id = :id FOR UPDATE", id=tasks[0])
            data.change(who, appointment_id, status="CANCELLED")  # would wait 5 s, then fail
        finally:
            sweep.run("ROLLBACK")
            sweep.close()
    left = {r["id"] for r in rows(sql, appointment_id) if r["target"] == "TASK" and r["dispatched_at"] is None}
    assert tasks[0] in left and tasks[1] not in left  # the held one stays, for notify to skip


@pytest.fixture
def unpaused() -> Iterator[None]:
    yield
    dispatch._paused_until = 0.0


def test_after_cloud_tasks_timed_out_requests_leave_their_rows_to_the_sweep(
    queues: Recorder, unpaused: None, sql: pg8000.native.Connection
) -> None:
    """A hung API (it takes the connection, then says nothing) costs one request its
    timeout; the next ones do not wait for it, and the sweep sends everything later."""
    doctor = data.doctor()
    first_slot, second_slot = data.slots(doctor, data.in_days(3))[:2]
    with (
        socket.create_server(("127.0.0.1", 0)) as hung,
        data.environment(TASKS_EMULATOR_HOST=f"127.0.0.1:{hung.getsockname()[1]}"),
    ):
        first, first_ids = data.book(data.patient(), first_slot)
        dispatch.after_commit(first_ids)  # waits CREATE_TASK_TIMEOUT_S, then pauses
        second, second_ids = data.book(data.patient(), second_slot)
        dispatch.after_commit(second_ids)
    tried = [r for r in rows(sql, first) if r["target"] == "TASK"]
    assert all(r["attempts"] == 1 and r["dispatched_at"] is None for r in tried)
    assert tried[0]["last_error"].startswith("DeadlineExceeded")
    untried = [r for r in rows(sql, second) if r["target"] == "TASK"]
    assert all(r["attempts"] == 0 and r["dispatched_at"] is None for r in untried)
    if events_configured():  # Pub/Sub did not hang: the event went out at once
        assert next(r for r in rows(sql, second) if r["target"] == "EVENT")["dispatched_at"] is not None

    counts = dispatch.sweep(settle=timedelta(0))  # the sweep is never paused
    assert counts["tasks"] == 4 and counts["failed"] == 0
    assert sorted(r["body"]["kind"] for r in queues.wait_for(2)) == ["CONFIRMATION", "CONFIRMATION"]


@needs_gcloud
def test_a_changes_trace_goes_with_its_tasks_and_event(
    queues: Recorder, pubsub_host: str, sql: pg8000.native.Connection
) -> None:
    """Issue 17 §2: the trace of the request that booked is stored with every outbox row,
    sent as the task's trace headers and as the event's traceparent attribute."""
    trace = uuid.uuid4().hex
    subscription = subscribe(pubsub_host)
    doctor = data.doctor()
    logs.set_trace(f"00-{trace}-00f067aa0ba902b7-01")
    try:
        appointment_id, outbox_ids = data.book(data.patient(), data.slots(doctor, data.in_days(3))[0])
    finally:
        logs.set_trace(None)
    stored = sql.run("SELECT target, trace FROM outbox WHERE appointment_id = :a", a=appointment_id)
    assert len(stored) == 3 and all(row[1] == trace for row in stored)

    dispatch.after_commit(outbox_ids)  # as the sweep would, outside the request: from the rows
    [delivered] = queues.wait_for(1)
    assert delivered["headers"]["traceparent"].split("-")[1] == trace
    assert delivered["headers"]["x-cloud-trace-context"].startswith(f"{trace}/")
    [event] = pull_events(pubsub_host, subscription, expect=1)
    assert event["attributes"]["traceparent"].split("-")[1] == trace


def test_a_change_without_a_trace_sends_none(queues: Recorder, sql: pg8000.native.Connection) -> None:
    doctor = data.doctor()
    logs.set_trace(None)
    appointment_id, outbox_ids = data.book(data.patient(), data.slots(doctor, data.in_days(3))[0])
    assert sql.run("SELECT count(*) FROM outbox WHERE appointment_id = :a AND trace IS NOT NULL", a=appointment_id) == [
        [0]
    ]
    dispatch.after_commit(outbox_ids)
    [delivered] = queues.wait_for(1)
    assert "traceparent" not in delivered["headers"] and "x-cloud-trace-context" not in delivered["headers"]
