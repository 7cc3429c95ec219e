"""The notify function's rules against real PostgreSQL and a real SMTP sink (local.mailsink).

A message is sent only while it is still true, at most once per message_key (also
under concurrent duplicate deliveries); SMTP trouble answers 503 until the last
attempt, which records FAILED; bad payloads are 4xx; with VERIFY_OIDC on, only a
Google-signed token for our audience from a listed account gets in.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
import pg8000.native
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from werkzeug.test import EnvironBuilder

from local import cli
from local.mailsink import read_all
from local.paths import ROOT
from local.postgres import connect_native
from shared import mail, notify
from shared.db.connection import reset_pool
from shared.errors import DatabaseUnavailable
from shared.notify import TaskMessage
from tests.emulators import free_port, mail_sink
from tests.helpers import state_dir
from tests.integration import notify_support as data
from tests.log_lines import captured


@pytest.fixture(scope="module")
def sink() -> Iterator[tuple[int, Path]]:
    folder = state_dir("mail-int") / uuid.uuid4().hex[:8]
    with mail_sink(folder) as port:
        yield port, folder


@pytest.fixture
def smtp(database_url: str, sink: tuple[int, Path]) -> Iterator[Path]:
    port, folder = sink
    with data.environment(
        SMTP_HOST="127.0.0.1", SMTP_PORT=str(port), REMINDER_OFFSETS="24h", TASKS_MAX_ATTEMPTS="8", VERIFY_OIDC="false"
    ):
        yield folder


def mails(folder: Path, appointment_id: uuid.UUID, wait: float = 0.0) -> list[EmailMessage]:
    deadline = time.monotonic() + wait
    while True:
        found = [m for m in read_all(folder) if m["X-Clinic-Appointment"] == str(appointment_id)]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def message(sql: pg8000.native.Connection, appointment_id: uuid.UUID, kind: str) -> TaskMessage:
    """The payload the outbox wrote for this appointment's newest task of this kind."""
    rows = sql.run(
        "SELECT payload FROM outbox WHERE appointment_id = :a AND target = 'TASK' "
        "AND payload->>'kind' = :k ORDER BY id DESC LIMIT 1",
        a=appointment_id,
        k=kind,
    )
    return TaskMessage.model_validate(rows[0][0])


def notifications(sql: pg8000.native.Connection, appointment_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in sql.run(
            "SELECT kind, status, attempts, recipient, error FROM notifications WHERE appointment_id = :a ORDER BY id",
            a=appointment_id,
        )
    ]


def calendar(mail: EmailMessage) -> str:
    part = next(p for p in mail.walk() if p.get_content_type() == "text/calendar")
    content = part.get_content()
    return content.decode() if isinstance(content, bytes) else str(content)


def test_a_confirmation_is_sent_once(smtp: Path, sql: pg8000.native.Connection) -> None:
    doctor = data.doctor("America/New_York")
    who = data.patient()
    appointment_id, _ = data.book(who, data.slots(doctor, data.in_days(3))[0])
    confirmation = message(sql, appointment_id, "CONFIRMATION")

    assert notify.deliver(confirmation).result == "sent"
    assert notify.deliver(confirmation, retry=1).result == "duplicate"
    with data.environment(SMTP_PORT=str(free_port())):  # known as sent without asking the relay
        assert notify.deliver(confirmation, retry=2).result == "duplicate"

    [mail] = mails(smtp, appointment_id)
    assert mail["To"] == who.email and mail["X-Clinic-Kind"] == "CONFIRMATION"
    assert mail["X-Envelope-To"] == who.email
    assert "09:00" in mail["Subject"]  # the doctor's local time, not UTC
    assert [p.get_content_type() for p in mail.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    body = mail.get_body(("plain",))
    assert body is not None and "America/New_York" in body.get_content()
    ics = calendar(mail)
    assert "METHOD:REQUEST" in ics and f"UID:{appointment_id}@clinic" in ics and "SEQUENCE:0" in ics
    assert notifications(sql, appointment_id) == [("CONFIRMATION", "SENT", 1, who.email, None)]
    assert sql.run("SELECT channel FROM notifications WHERE appointment_id = :a", a=appointment_id) == [["email"]]


def test_concurrent_duplicate_deliveries_send_one_email(smtp: Path, sql: pg8000.native.Connection) -> None:
    doctor = data.doctor()
    appointment_id, _ = data.book(data.patient(), data.slots(doctor, data.in_days(3))[0])
    confirmation = message(sql, appointment_id, "CONFIRMATION")
    results: list[str] = []
    start = threading.Barrier(6)

    def deliver() -> None:
        start.wait()
        results.append(notify.deliver(confirmation).result)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["duplicate"] * 5 + ["sent"]
    assert len(mails(smtp, appointment_id)) == 1
    assert [n[:2] for n in notifications(sql, appointment_id)] == [("CONFIRMATION", "SENT")]


def test_reminders_only_for_a_booked_appointment_on_its_slot(smtp: Path, sql: pg8000.native.Connection) -> None:
    doctor = data.doctor()
    first, second, third = data.slots(doctor, data.in_days(3))[:3]
    cancelled_id, _ = data.book(data.patient(), first)
    moved_by = data.patient()
    moved_id, _ = data.book(moved_by, second)
    cancelled_reminder = message(sql, cancelled_id, "REMINDER")
    old_reminder = message(sql, moved_id, "REMINDER")
    data.change(data.ADMIN, cancelled_id, status="CANCELLED")
    data.change(moved_by, moved_id, slot_id=third)
    new_reminder = message(sql, moved_id, "REMINDER")
    assert new_reminder.message_key != old_reminder.message_key

    assert notify.deliver(cancelled_reminder).result == "skipped"
    assert notify.deliver(old_reminder).result == "skipped"
    assert notify.deliver(new_reminder).result == "sent"
    assert mails(smtp, cancelled_id) == []
    [reminder] = mails(smtp, moved_id)
    assert reminder["X-Clinic-Message-Key"].strip() == new_reminder.message_key
    assert not [p for p in reminder.walk() if p.get_content_type() == "text/calendar"]


def test_notices_follow_the_appointment(smtp: Path, sql: pg8000.native.Connection) -> None:
    doctor = data.doctor("Asia/Tokyo")
    first, second = data.slots(doctor, data.in_days(6))[:2]
    who = data.patient()
    appointment_id, _ = data.book(who, first)
    confirmation = message(sql, appointment_id, "CONFIRMATION")
    data.change(who, appointment_id, slot_id=second)
    moved = message(sql, appointment_id, "RESCHEDULED")
    # A confirmation for the old slot says nothing true any more: the move notice covers it.
    assert notify.deliver(confirmation).result == "skipped"
    assert notify.deliver(moved).result == "sent"
    data.change(who, appointment_id, status="CANCELLED")
    # A move notice delivered again after the cancellation is not sent either.
    assert notify.deliver(moved, retry=3).result == "skipped"
    cancellation = message(sql, appointment_id, "CANCELLATION")
    assert notify.deliver(cancellation).result == "sent"

    move_mail, cancel_mail = mails(smtp, appointment_id)
    assert move_mail["X-Clinic-Kind"] == "RESCHEDULED" and "09:30" in move_mail["Subject"]
    text = move_mail.get_body(("plain",)).get_content()
    assert f"Was:    {mail.when(_old_time(sql, first))}, with {doctor.name}" in text
    assert "METHOD:REQUEST" in calendar(move_mail) and "SEQUENCE:1" in calendar(move_mail)
    assert cancel_mail["X-Clinic-Kind"] == "CANCELLATION"
    ics = calendar(cancel_mail)
    assert "METHOD:CANCEL" in ics and "STATUS:CANCELLED" in ics and "SEQUENCE:2" in ics
    assert f"UID:{appointment_id}@clinic" in ics


def _old_time(sql: pg8000.native.Connection, slot_id: object) -> mail.Previous:
    start, end = sql.run("SELECT start_time, end_time FROM slots WHERE id = :id", id=slot_id)[0]
    return mail.Previous(start=start, end=end, doctor_name="", timezone="Asia/Tokyo")


def test_a_move_to_another_doctor_names_the_doctor_and_time_it_left(smtp: Path, sql: pg8000.native.Connection) -> None:
    day = data.in_days(7)
    here_doctor, there_doctor = data.doctor("Asia/Tokyo"), data.doctor("Europe/Berlin")
    here, there = data.slots(here_doctor, day)[0], data.slots(there_doctor, day)[3]
    who = data.patient()
    appointment_id, _ = data.book(who, here)
    data.change(who, appointment_id, slot_id=there)
    assert notify.deliver(message(sql, appointment_id, "RESCHEDULED")).result == "sent"
    [moved] = mails(smtp, appointment_id)
    text = moved.get_body(("plain",)).get_content()
    assert f"Doctor: {there_doctor.name}" in text
    assert f"Was:    {mail.when(_old_time(sql, here))}, with {here_doctor.name}" in text  # in Tokyo time


def test_a_move_notice_names_the_time_the_patient_last_heard_of(smtp: Path, sql: pg8000.native.Connection) -> None:
    doctor = data.doctor("Europe/Berlin")
    booked, hop, landed, last = data.slots(doctor, data.in_days(8))[:4]
    who = data.patient()
    appointment_id, _ = data.book(who, booked)
    assert notify.deliver(message(sql, appointment_id, "CONFIRMATION")).result == "sent"
    data.change(who, appointment_id, slot_id=hop)
    hop_notice = message(sql, appointment_id, "RESCHEDULED")
    data.change(who, appointment_id, slot_id=landed)  # at once: the first move's notice is never sent
    assert notify.deliver(hop_notice).result == "skipped"
    assert notify.deliver(message(sql, appointment_id, "RESCHEDULED")).result == "sent"
    [_, moved] = mails(smtp, appointment_id)
    was_booked = mail.Previous(*_slot_time(sql, booked), doctor_name="", timezone="Europe/Berlin")
    assert f"Was:    {mail.when(was_booked)}, with {doctor.name}" in moved.get_body(("plain",)).get_content()

    # Once a move notice went out, the next one names the time it announced.
    data.change(who, appointment_id, slot_id=last)
    assert notify.deliver(message(sql, appointment_id, "RESCHEDULED")).result == "sent"
    was_landed = mail.Previous(*_slot_time(sql, landed), doctor_name="", timezone="Europe/Berlin")
    text = mails(smtp, appointment_id)[-1].get_body(("plain",)).get_content()
    assert f"Was:    {mail.when(was_landed)}, with {doctor.name}" in text

    # Moved away and straight back: the patient's last notice is still true, and a
    # "moved" notice would tell them nothing.
    sent_before = len(mails(smtp, appointment_id))
    data.change(who, appointment_id, slot_id=hop)
    away = message(sql, appointment_id, "RESCHEDULED")
    data.change(who, appointment_id, slot_id=last)
    assert notify.deliver(away).result == "skipped"
    back = notify.deliver(message(sql, appointment_id, "RESCHEDULED"))
    assert (back.result, back.detail) == ("skipped", "unchanged since the patient's last notice")
    assert len(mails(smtp, appointment_id)) == sent_before


def test_a_move_notice_overtaken_by_a_later_ones_is_not_sent(smtp: Path, sql: pg8000.native.Connection) -> None:
    """Its delivery delayed (a relay outage, say) past later moves' notices, and the
    appointment back at its slot: still, what it would say ("was" the booked time) is no
    longer what the patient last heard."""
    doctor = data.doctor("Europe/Berlin")
    booked, first, second = data.slots(doctor, data.in_days(8))[:3]
    who = data.patient()
    appointment_id, _ = data.book(who, booked)
    assert notify.deliver(message(sql, appointment_id, "CONFIRMATION")).result == "sent"
    data.change(who, appointment_id, slot_id=first)
    delayed = message(sql, appointment_id, "RESCHEDULED")
    data.change(who, appointment_id, slot_id=second)
    assert notify.deliver(message(sql, appointment_id, "RESCHEDULED")).result == "sent"
    data.change(who, appointment_id, slot_id=first)  # back where the delayed notice says
    assert notify.deliver(message(sql, appointment_id, "RESCHEDULED")).result == "sent"
    outcome = notify.deliver(delayed)
    assert (outcome.result, outcome.detail) == ("skipped", "a later change's notice has already been sent")
    subjects = [m["Subject"].split(":")[0] for m in mails(smtp, appointment_id)]
    assert subjects == ["Your appointment is confirmed", "Your appointment was moved", "Your appointment was moved"]


def test_away_and_back_before_any_notice_reads_as_a_confirmation(smtp: Path, sql: pg8000.native.Connection) -> None:
    """Nothing reached the patient before the moves (the confirmation's delivery found the
    appointment moved): the notice of the move back is all they get, and it confirms."""
    doctor = data.doctor("Europe/Berlin")
    booked, hop = data.slots(doctor, data.in_days(8))[:2]
    who = data.patient()
    appointment_id, _ = data.book(who, booked)
    confirmation = message(sql, appointment_id, "CONFIRMATION")
    data.change(who, appointment_id, slot_id=hop)
    assert notify.deliver(confirmation).result == "skipped"  # it had moved
    away = message(sql, appointment_id, "RESCHEDULED")
    data.change(who, appointment_id, slot_id=booked)
    assert notify.deliver(away).result == "skipped"
    assert notify.deliver(message(sql, appointment_id, "RESCHEDULED")).result == "sent"
    [only] = mails(smtp, appointment_id)
    assert only["Subject"].startswith("Your appointment is confirmed:")
    text = only.get_body(("plain",)).get_content()
    assert "Your appointment is booked." in text and "moved" not in text and "Was:" not in text


def _moved_away_and_back(sql: pg8000.native.Connection) -> tuple[uuid.UUID, TaskMessage, TaskMessage]:
    """An appointment moved away and back before any notice went out: its confirmation
    and its move-back notice, each alone worth a confirming email."""
    doctor = data.doctor("Europe/Berlin")
    booked, hop = data.slots(doctor, data.in_days(8))[:2]
    who = data.patient()
    appointment_id, _ = data.book(who, booked)
    dispatched = "UPDATE outbox SET dispatched_at = now() WHERE appointment_id = :a"  # handed to Cloud Tasks
    sql.run(dispatched, a=appointment_id)
    data.change(who, appointment_id, slot_id=hop)
    sql.run(dispatched, a=appointment_id)
    data.change(who, appointment_id, slot_id=booked)
    return appointment_id, message(sql, appointment_id, "CONFIRMATION"), message(sql, appointment_id, "RESCHEDULED")


def test_a_confirmation_delivered_after_the_move_back_notice_is_not_sent(
    smtp: Path, sql: pg8000.native.Connection
) -> None:
    """Cloud Tasks delivers in any order: the move back's notice confirmed it already."""
    appointment_id, confirmation, back = _moved_away_and_back(sql)
    assert notify.deliver(back).result == "sent"
    assert notify.deliver(confirmation).result == "skipped"
    [only] = mails(smtp, appointment_id)
    assert only["Subject"].startswith("Your appointment is confirmed:")


def test_a_confirmation_and_the_move_back_notice_at_once_send_one_email(
    smtp: Path, sql: pg8000.native.Connection, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """The move back's notice arrives while the confirmation is being sent: it waits for
    it, then finds the patient told, instead of confirming a second time."""
    appointment_id, confirmation, back = _moved_away_and_back(sql)
    sending, release = threading.Event(), threading.Event()
    compose = mail.compose

    def slow_confirmation(notice: mail.Notice, settings: Any) -> Any:
        if notice.kind == "CONFIRMATION":
            sending.set()
            release.wait(timeout=10)  # its SENT row written, not yet committed
        return compose(notice, settings)

    monkeypatch.setattr(mail, "compose", slow_confirmation)
    results: dict[str, str] = {}

    def deliver(name: str, body: TaskMessage) -> None:
        results[name] = notify.deliver(body).result

    first = threading.Thread(target=deliver, args=("confirmation", confirmation))
    first.start()
    assert sending.wait(timeout=10)
    second = threading.Thread(target=deliver, args=("back", back))
    second.start()
    probe = connect_native(database_url)
    try:
        deadline = time.monotonic() + 5
        while second.is_alive() and time.monotonic() < deadline:  # until it waits for the lock
            if probe.run("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")[0][0]:
                break
            time.sleep(0.01)
    finally:
        probe.close()
    release.set()
    first.join(timeout=10)
    second.join(timeout=10)
    assert results == {"confirmation": "sent", "back": "skipped"}
    [only] = mails(smtp, appointment_id)
    assert only["X-Clinic-Kind"] == "CONFIRMATION"


def test_a_cancellation_after_an_unannounced_move_names_the_time_the_patient_knew(
    smtp: Path, sql: pg8000.native.Connection
) -> None:
    doctor = data.doctor("Europe/Berlin")
    booked, moved_to = data.slots(doctor, data.in_days(8))[:2]
    who = data.patient()
    appointment_id, _ = data.book(who, booked)
    assert notify.deliver(message(sql, appointment_id, "CONFIRMATION")).result == "sent"
    data.change(who, appointment_id, slot_id=moved_to)
    move = message(sql, appointment_id, "RESCHEDULED")
    data.change(who, appointment_id, status="CANCELLED")
    assert notify.deliver(move).result == "skipped"  # cancelled by then: never announced
    assert notify.deliver(message(sql, appointment_id, "CANCELLATION")).result == "sent"
    [_, cancelled] = mails(smtp, appointment_id)
    text = cancelled.get_body(("plain",)).get_content()
    known = mail.Previous(*_slot_time(sql, booked), doctor_name="", timezone="Europe/Berlin")
    now = mail.Previous(*_slot_time(sql, moved_to), doctor_name="", timezone="Europe/Berlin")
    assert f"When:   {mail.when(now)}" in text
    assert f"Moved from: {mail.when(known)}, with {doctor.name}" in text

    # Cancelled where the patient knew it to be: one time, no "Moved from".
    other, _ = data.book(who, booked)
    assert notify.deliver(message(sql, other, "CONFIRMATION")).result == "sent"
    data.change(who, other, status="CANCELLED")
    assert notify.deliver(message(sql, other, "CANCELLATION")).result == "sent"
    assert "Moved from" not in mails(smtp, other)[-1].get_body(("plain",)).get_content()


def _slot_time(sql: pg8000.native.Connection, slot_id: object) -> tuple[datetime, datetime]:
    start, end = sql.run("SELECT start_time, end_time FROM slots WHERE id = :id", id=slot_id)[0]
    return start, end


def test_a_move_to_another_doctors_slot_at_the_same_time_keeps_its_reminder(
    smtp: Path, sql: pg8000.native.Connection
) -> None:
    day = data.in_days(5)
    here, there = data.slots(data.doctor("UTC"), day)[0], data.slots(data.doctor("UTC"), day)[0]
    who = data.patient()
    appointment_id, _ = data.book(who, here)
    data.change(who, appointment_id, slot_id=there)  # the same start, another doctor
    reminder = message(sql, appointment_id, "REMINDER")
    assert reminder.slot_id == there
    assert notify.deliver(reminder).result == "sent"
    data.change(who, appointment_id, slot_id=here)  # and back: the first reminder is true again
    first = message(sql, appointment_id, "REMINDER")
    assert first.slot_id == here and first.message_key != reminder.message_key
    assert notify.deliver(reminder, retry=1).result == "skipped"
    assert notify.deliver(first).result == "sent"
    kinds = [m["X-Clinic-Kind"] for m in mails(smtp, appointment_id)]
    assert kinds == ["REMINDER", "REMINDER"]


def test_smtp_down_is_retried_then_recorded_as_failed(smtp: Path, sql: pg8000.native.Connection) -> None:
    doctor = data.doctor()
    who = data.patient()
    appointment_id, _ = data.book(who, data.slots(doctor, data.in_days(3))[0])
    confirmation = message(sql, appointment_id, "CONFIRMATION")
    with data.environment(SMTP_PORT=str(free_port())):
        with pytest.raises(notify.Unavailable) as raised:
            notify.deliver(confirmation, retry=0)
        assert raised.value.status == 503
        assert notifications(sql, appointment_id) == []  # the SENT row rolled back with the failure
        with pytest.raises(notify.Unavailable), captured("clinic.notify") as retried:
            notify.deliver(confirmation, retry=6)
        with captured("clinic.notify") as gave_up:
            outcome = notify.deliver(confirmation, retry=7)  # the 8th and last attempt
    assert outcome.result == "failed"
    # What the notification-outcomes metric and the FAILED alert read (modules/monitoring).
    assert [(line["outcome"], line["kind"], line["attempt"]) for line in retried] == [("retry", "CONFIRMATION", 7)]
    assert [(line["outcome"], line["kind"], line["severity"]) for line in gave_up] == [
        ("failed", "CONFIRMATION", "ERROR")
    ]
    [(kind, status, attempts, recipient, error)] = notifications(sql, appointment_id)
    assert (kind, status, attempts, recipient) == ("CONFIRMATION", "FAILED", 8, who.email) and "Connection" in error
    assert mails(smtp, appointment_id) == []


def test_an_operator_sends_again_what_failed_during_an_outage(
    smtp: Path, sql: pg8000.native.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    doctor = data.doctor()
    who, moved_away = data.patient(), data.patient()
    appointment_id, _ = data.book(who, data.slots(doctor, data.in_days(3))[0])
    stale_id, _ = data.book(moved_away, data.slots(doctor, data.in_days(4))[0])
    before = datetime.now(UTC) - timedelta(seconds=1)
    sql.run("UPDATE outbox SET dispatched_at = now()")  # the tasks went to Cloud Tasks
    with data.environment(SMTP_PORT=str(free_port())):  # the relay is down past the retry budget
        for appointment in (appointment_id, stale_id):
            assert notify.deliver(message(sql, appointment, "CONFIRMATION"), retry=7).result == "failed"
    data.change(moved_away, stale_id, status="CANCELLED")  # its confirmation is no longer true

    cli.main(["resend-failed", "--since", before.isoformat(), "--dry-run"])
    assert "2 failed message(s) (dry run: nothing queued)" in capsys.readouterr().out
    assert sql.run("SELECT count(*) FROM outbox WHERE name LIKE '%-resend-%'") == [[0]]
    cli.main(["resend-failed", "--since", before.isoformat()])
    assert "2 message(s) queued again" in capsys.readouterr().out
    cli.main(["resend-failed", "--since", before.isoformat()])  # what is queued again is not listed again
    assert capsys.readouterr().out == "0 failed message(s)\n"

    # What the sweep would send: the same message under a new task name.
    resent = {
        row[0]: TaskMessage.model_validate(row[1])
        for row in sql.run("SELECT appointment_id, payload FROM outbox WHERE name LIKE '%-resend-%'")
    }
    assert resent[appointment_id] == message(sql, appointment_id, "CONFIRMATION")
    assert notify.deliver(resent[appointment_id]).result == "sent"
    assert notify.deliver(resent[stale_id]).result == "skipped"  # checked against the database as ever
    [mail_] = mails(smtp, appointment_id)
    assert mail_["X-Clinic-Kind"] == "CONFIRMATION"
    assert mails(smtp, stale_id) == []
    with data.environment(SMTP_PORT=str(free_port())):  # the resent one fails for good again
        third = data.patient()
        third_id, _ = data.book(third, data.slots(doctor, data.in_days(5))[0])
        sql.run("UPDATE outbox SET dispatched_at = now() WHERE appointment_id = :a", a=third_id)
        assert notify.deliver(message(sql, third_id, "CONFIRMATION"), retry=7).result == "failed"
        cli.main(["resend-failed", "--since", before.isoformat()])
        assert "1 message(s) queued again" in capsys.readouterr().out
        assert notify.deliver(message(sql, third_id, "CONFIRMATION"), retry=7).result == "failed"
    cli.main(["resend-failed", "--since", before.isoformat(), "--dry-run"])  # its new failure is listed
    listed = capsys.readouterr().out
    assert listed.count("CONFIRMATION") == 1 and str(third_id) in listed and "1 failed message(s)" in listed


@pytest.mark.parametrize(
    "since", ["yesterday", "2026-11-24 08:00", "0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00", "2026-13-01"]
)
def test_resend_failed_refuses_a_time_it_cannot_read(since: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["resend-failed", "--since", since, "--dry-run"])
    assert exited.value.code == 2 and "give a date (YYYY-MM-DD" in capsys.readouterr().err


@pytest.mark.parametrize(("retry", "lost"), [(7, True), (6, False)])
def test_a_database_down_on_the_last_attempt_leaves_the_message_in_the_log(
    smtp: Path, retry: int, lost: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """No FAILED row can be written then, and Cloud Tasks drops the task: the ERROR line,
    with the whole payload, is what an operator can send it again from."""
    body = TaskMessage(
        message_key=f"{uuid.uuid4()}-confirmation-1796284800-1",
        appointment_id=uuid.uuid4(),
        kind="CONFIRMATION",
        slot_id=uuid.uuid4(),
        start_time=datetime(2026, 12, 1, 9, tzinfo=UTC),
    )
    with data.environment(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/clinic"):
        reset_pool()
        try:
            with pytest.raises(DatabaseUnavailable):
                notify.deliver(body, retry=retry)  # TASKS_MAX_ATTEMPTS is 8 here
        finally:
            reset_pool()
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "LOST" in r.getMessage()]
    assert bool(errors) == lost
    if lost:
        logged = errors[0].__dict__["fields"]
        assert logged["payload"] == body.model_dump(mode="json") and logged["attempt"] == 8


def test_an_operator_sends_again_a_message_lost_with_the_database(
    smtp: Path, sql: pg8000.native.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    """No FAILED row records it (the LOST log line does): queued again by its key."""
    who = data.patient()
    appointment_id, _ = data.book(who, data.slots(data.doctor(), data.in_days(3))[0])
    sql.run("UPDATE outbox SET dispatched_at = now()")  # handed to Cloud Tasks, then lost
    lost = message(sql, appointment_id, "CONFIRMATION")
    unknown = f"{uuid.uuid4()}-confirmation-1796284800-1"

    with pytest.raises(SystemExit) as exited:
        cli.main(["resend", lost.message_key, unknown, "--dry-run"])
    assert exited.value.code == 1  # one key is not in the outbox
    out = capsys.readouterr().out
    assert f"{lost.message_key}  CONFIRMATION: would be queued again" in out
    assert f"{unknown}  not in the outbox" in out
    assert sql.run("SELECT count(*) FROM outbox WHERE name LIKE '%-resend-%'") == [[0]]

    cli.main(["resend", lost.message_key])
    assert "CONFIRMATION: queued again" in capsys.readouterr().out
    [[name, payload]] = sql.run("SELECT name, payload FROM outbox WHERE name LIKE '%-resend-%'")
    assert name.startswith(f"{lost.message_key}-resend-")
    assert TaskMessage.model_validate(payload) == lost  # the same message, under a new task name
    assert notify.deliver(lost).result == "sent"
    cli.main(["resend", lost.message_key])
    assert capsys.readouterr().out == f"{lost.message_key}  already sent: nothing to do\n"
    assert [m["X-Clinic-Kind"] for m in mails(smtp, appointment_id)] == ["CONFIRMATION"]


def test_resend_keeps_a_messages_due_time_and_leaves_what_has_not_left_alone(
    smtp: Path, sql: pg8000.native.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reminder queued again before it is due still waits for it (sent at once, it
    would take the place of the real one); a message the sweep has not handed to Cloud
    Tasks yet is not queued twice; a row queued again is known as sent by its payload's key."""
    who = data.patient()
    appointment_id, _ = data.book(who, data.slots(data.doctor(), data.in_days(3))[0])
    waiting = message(sql, appointment_id, "REMINDER")
    cli.main(["resend", waiting.message_key])
    assert "not handed to Cloud Tasks yet" in capsys.readouterr().out
    assert sql.run("SELECT count(*) FROM outbox WHERE name LIKE '%-resend-%'") == [[0]]

    sql.run("UPDATE outbox SET dispatched_at = now() WHERE appointment_id = :a", a=appointment_id)
    cli.main(["resend", waiting.message_key])
    assert "REMINDER: queued again" in capsys.readouterr().out
    [[due, original]] = sql.run(
        "SELECT again.deliver_at, o.deliver_at FROM outbox AS again"
        " JOIN outbox AS o ON o.name = :key WHERE again.name LIKE '%-resend-%'",
        key=waiting.message_key,
    )
    assert due == original > datetime.now(UTC)  # not now: when the reminder is due

    confirmation = message(sql, appointment_id, "CONFIRMATION")
    cli.main(["resend", confirmation.message_key])
    sql.run("UPDATE outbox SET dispatched_at = now() WHERE name LIKE '%-resend-%'")
    capsys.readouterr()
    [[again]] = sql.run("SELECT name FROM outbox WHERE name LIKE :n", n=f"{confirmation.message_key}-resend-%")
    assert notify.deliver(confirmation).result == "sent"
    cli.main(["resend", again])
    assert capsys.readouterr().out == f"{again}  already sent: nothing to do\n"


def test_resend_failed_without_a_database_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with data.environment(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/clinic"):
        reset_pool()
        try:
            with pytest.raises(SystemExit) as exited:
                cli.main(["resend-failed", "--since", "2026-11-24", "--dry-run"])
        finally:
            reset_pool()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("clinic: the database is unavailable") and "Traceback" not in err


def test_an_address_no_email_can_carry_is_recorded_as_failed_at_once(smtp: Path, sql: pg8000.native.Connection) -> None:
    """Rows from before the identity checks tightened may hold one; no retry would help."""
    doctor = data.doctor()
    who = data.patient()
    appointment_id, _ = data.book(who, data.slots(doctor, data.in_days(3))[0])
    sql.run("UPDATE users SET email = :e WHERE id = :id", e=f"{who.email}\r\nbcc: x@evil.example", id=who.id)
    outcome = notify.deliver(message(sql, appointment_id, "CONFIRMATION"), retry=0)
    assert outcome.result == "failed"
    [(kind, status, attempts, _, error)] = notifications(sql, appointment_id)
    assert (kind, status, attempts) == ("CONFIRMATION", "FAILED", 1) and "cannot be written" in error
    assert mails(smtp, appointment_id) == []


def test_a_relay_that_never_answers_holds_up_no_cancel(smtp: Path, sql: pg8000.native.Connection) -> None:
    """notify signs in to the relay before it locks the appointment: while it waits on a
    relay that accepted the connection and then said nothing, a cancel goes through."""
    doctor = data.doctor()
    who = data.patient()
    appointment_id, _ = data.book(who, data.slots(doctor, data.in_days(3))[0])
    confirmation = message(sql, appointment_id, "CONFIRMATION")
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never greets
        outcome: list[object] = []

        def attempt() -> None:
            try:
                outcome.append(notify.deliver(confirmation))
            except notify.Unavailable as error:
                outcome.append(error)

        with data.environment(SMTP_PORT=str(silent.getsockname()[1]), SMTP_TIMEOUT_S="8"):
            sending = threading.Thread(target=attempt)
            sending.start()
            connected, _ = silent.accept()  # notify is now waiting for the greeting
            with connected:
                data.change(who, appointment_id, status="CANCELLED")
                assert sending.is_alive(), "the cancel went through while notify still waited"
                sending.join(30)
    [failure] = outcome
    assert isinstance(failure, notify.Unavailable)  # retried later by Cloud Tasks ...
    assert notify.deliver(confirmation, retry=1).result == "skipped"  # ... when it is no longer true
    assert notifications(sql, appointment_id) == [] and mails(smtp, appointment_id) == []


def test_message_ids_are_the_same_on_every_attempt(smtp: Path, sql: pg8000.native.Connection) -> None:
    """If a message ever goes out twice, mail clients show it once."""
    from shared import mail
    from shared.settings import get_settings

    doctor = data.doctor()
    appointment_id, _ = data.book(data.patient(), data.slots(doctor, data.in_days(3))[0])
    key = message(sql, appointment_id, "CONFIRMATION").message_key
    notice = mail.Notice(
        kind="CONFIRMATION",
        message_key=key,
        appointment_id=str(appointment_id),
        recipient="p@example.com",
        patient_name="P",
        doctor_name="D",
        timezone="UTC",
        start=datetime.now(UTC),
        end=datetime.now(UTC) + timedelta(minutes=30),
    )
    first, second = (mail.compose(notice, get_settings())["Message-ID"] for _ in range(2))
    assert first == second == f"<{key}@clinic.example>"


# -- over HTTP, in process: the notify function's router -----------------------------------


def notify_main() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notify_main_under_test", ROOT / "functions/notify/main.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call(
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, Any]]:
    builder = EnvironBuilder(
        method="POST",
        path=path,
        headers=headers or {},
        content_type=content_type,
        data=raw if raw is not None else json.dumps(body if body is not None else {}),
    )
    payload, status, _ = notify_main().router(builder.get_request())
    return status, json.loads(payload)


def test_payloads_are_validated_never_a_500(smtp: Path, sql: pg8000.native.Connection) -> None:
    doctor = data.doctor()
    appointment_id, _ = data.book(data.patient(), data.slots(doctor, data.in_days(3))[0])
    good = message(sql, appointment_id, "CONFIRMATION").model_dump(mode="json")
    assert call("/tasks/notify", raw=b"{not json")[0] == 400
    assert call("/tasks/notify", good, content_type="text/plain")[0] == 415
    assert call("/tasks/notify", {**good, "kind": "SPAM"})[0] == 422
    assert call("/tasks/notify", {**good, "appointment_id": "nope"})[0] == 422
    assert call("/tasks/notify", {**good, "start_time": "2030-01-01T10:00:00"})[0] == 422  # no offset
    assert call("/tasks/notify", {**good, "message_key": "a/b"})[0] == 422
    assert call("/tasks/notify", {**good, "extra": 1})[0] == 422
    assert call("/tasks/notify", [good])[0] == 422
    unknown = {**good, "appointment_id": str(uuid.uuid4())}
    assert call("/tasks/notify", unknown) == (200, {"result": "skipped", "detail": "no such appointment"})
    assert call("/tasks/notify", good, {"X-CloudTasks-TaskRetryCount": "x"})[1]["result"] == "sent"
    status, counts = call("/tasks/sweep")
    assert status == 200 and {"tasks", "events", "failed", "pending_tasks", "pending_events"} <= set(counts)
    assert {"pruned_idempotency_keys", "pruned_outbox"} <= set(counts)  # the sweep also prunes


class Google:
    """Signs OIDC tokens like Google and serves the certificates like googleapis.com."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-oidc")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        certs = json.dumps({"kid-1": cert.public_bytes(serialization.Encoding.PEM).decode()}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(certs)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.certs_url = f"http://127.0.0.1:{self.server.server_address[1]}/oauth2/v1/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": "https://accounts.google.com",
            "aud": "https://notify.example",
            "iat": now,
            "exp": now + 600,
            "sub": "1234",
            "email": "tasks@proj.iam.gserviceaccount.com",
            "email_verified": True,
            **claims,
        }
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": "kid-1"})


@pytest.fixture
def google(smtp: Path) -> Iterator[Google]:
    issuer = Google()
    with data.environment(
        VERIFY_OIDC="true",
        OIDC_AUDIENCE="https://notify.example",
        NOTIFY_INVOKERS="tasks@proj.iam.gserviceaccount.com,sched@proj.iam.gserviceaccount.com",
        OIDC_CERTS_URL=issuer.certs_url,
    ):
        yield issuer
    issuer.server.shutdown()


def test_with_verification_on_only_a_valid_oidc_token_gets_in(google: Google) -> None:
    def sweep_with(authorization: str | None) -> int:
        return call("/tasks/sweep", headers={"Authorization": authorization} if authorization else {})[0]

    def bearer(**claims: Any) -> str:
        return f"Bearer {google.token(**claims)}"

    assert sweep_with(None) == 401
    assert sweep_with("Basic dXNlcjpwYXNz") == 401
    assert sweep_with("Bearer not-a-token") == 401
    assert sweep_with(bearer(aud="https://elsewhere.example")) == 401
    assert sweep_with(bearer(exp=int(time.time()) - 120, iat=int(time.time()) - 720)) == 401
    assert sweep_with(bearer(iss="https://evil.example")) == 401
    assert sweep_with(bearer(email="someone@proj.iam.gserviceaccount.com")) == 403
    assert sweep_with(bearer(email_verified=False)) == 403
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        jwt.decode(google.token(), options={"verify_signature": False}),
        other_key,
        algorithm="RS256",
        headers={"kid": "kid-1"},
    )
    assert sweep_with(f"Bearer {forged}") == 401
    assert sweep_with(bearer()) == 200
    assert sweep_with(bearer(email="sched@proj.iam.gserviceaccount.com")) == 200
    # The notify route checks the caller before it reads the body.
    assert call("/tasks/notify", {"bad": "body"})[0] == 401
    assert call("/tasks/notify", {"bad": "body"}, {"Authorization": bearer()})[0] == 422


def _signature_removed(token: str) -> str:
    """The token as Cloud Run forwards it after checking it: its signature replaced."""
    header, payload, _ = token.split(".")
    return f"{header}.{payload}.SIGNATURE_REMOVED_BY_GOOGLE"


def test_behind_cloud_run_iam_a_token_without_its_signature_is_checked_by_its_claims(google: Google) -> None:
    def sweep_with(headers: dict[str, str]) -> int:
        return call("/tasks/sweep", headers=headers)[0]

    def stripped(**claims: Any) -> str:
        return f"Bearer {_signature_removed(google.token(**claims))}"

    # Not behind Cloud Run IAM: nobody vouches for an unsigned token.
    assert sweep_with({"Authorization": stripped()}) == 401
    with data.environment(OIDC_CHECKED_BY_CLOUD_RUN="true"):
        assert sweep_with({"Authorization": stripped()}) == 200
        assert sweep_with({"Authorization": stripped(email="sched@proj.iam.gserviceaccount.com")}) == 200
        # Cloud Run accepts any audience the service answers to; ours is checked here.
        assert sweep_with({"Authorization": stripped(aud="https://other-service.example")}) == 401
        assert sweep_with({"Authorization": stripped(aud=["https://x.example", "https://notify.example"])}) == 200
        assert sweep_with({"Authorization": stripped(exp=int(time.time()) - 120)}) == 401
        assert sweep_with({"Authorization": stripped(iss="https://evil.example")}) == 401
        assert sweep_with({"Authorization": stripped(email="someone@proj.iam.gserviceaccount.com")}) == 403
        assert sweep_with({"Authorization": stripped(email_verified=False)}) == 403
        assert sweep_with({"Authorization": "Bearer e30.bm90LWpzb24.SIGNATURE_REMOVED_BY_GOOGLE"}) == 401
        assert sweep_with({"Authorization": "Bearer SIGNATURE_REMOVED_BY_GOOGLE"}) == 401
        # A token that still has its signature is verified as before.
        assert sweep_with({"Authorization": f"Bearer {google.token()}"}) == 200
        # With both headers, Cloud Run checked X-Serverless-Authorization and passed
        # Authorization through untouched: only the checked one counts.
        outsider = stripped(email="someone@proj.iam.gserviceaccount.com")
        assert sweep_with({"X-Serverless-Authorization": outsider, "Authorization": stripped()}) == 403
        assert sweep_with({"X-Serverless-Authorization": stripped(), "Authorization": "Bearer junk"}) == 200
