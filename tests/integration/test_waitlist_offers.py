"""The waitlist's offer email (decision 0013) over the email channel, against real
PostgreSQL and a real SMTP sink (local.mailsink), through the notify function's router.

Each attempt logs notify's outcome line (kind WAITLIST_OFFER), which modules/monitoring
counts: sent once; 503 while the relay is down, FAILED at the queue's last attempt; FAILED
at once for an address no email can carry; nothing for an offer no longer open.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pg8000.native
import pytest
from werkzeug.test import EnvironBuilder

from local.mailsink import read_all
from shared import appointments, waitlist
from shared.auth import Caller
from shared.db.connection import reset_pool
from shared.errors import DatabaseUnavailable
from shared.models import AppointmentChange, AppointmentCreate
from tests.emulators import free_port, mail_sink
from tests.helpers import state_dir
from tests.integration.notify_support import committed_without_dispatch, environment
from tests.integration.test_first_use import new_caller
from tests.integration.test_notify import notify_main
from tests.integration.test_waitlist import join, new_doctor, new_slot
from tests.log_lines import captured

Conn = pg8000.native.Connection


@pytest.fixture(scope="module")
def sink() -> Iterator[tuple[int, Path]]:
    folder = state_dir("mail-offers") / uuid.uuid4().hex[:8]
    with mail_sink(folder) as port:
        yield port, folder


@pytest.fixture
def smtp(database_url: str, sink: tuple[int, Path]) -> Iterator[Path]:
    port, folder = sink
    with environment(
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(port),
        TASKS_MAX_ATTEMPTS="8",
        VERIFY_OIDC="false",
        WAITLIST_LEAD_MINUTES="120",
        HOLD_MINUTES="15",
    ):
        yield folder


class Held:
    """A slot three days ahead, booked and cancelled: held for the one patient waiting."""

    def __init__(self, sql: Conn) -> None:
        doctor = new_doctor(sql)
        start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=3)
        slot = new_slot(sql, doctor, start)
        holder = new_caller()
        booked, _ = committed_without_dispatch(
            lambda uow: appointments.book(uow, holder, AppointmentCreate(slot_id=slot))
        )
        self.patient: Caller = new_caller()
        self.entry = join(self.patient, doctor, (start.date() - timedelta(days=1), start.date() + timedelta(days=1)))
        committed_without_dispatch(
            lambda uow: appointments.change(uow, holder, booked.id, AppointmentChange(status="CANCELLED"))
        )
        [[offer_id]] = sql.run(
            "SELECT id FROM waitlist_offers WHERE entry_id = :e AND status = 'OFFERED'", e=self.entry
        )
        self.offer_id = uuid.UUID(str(offer_id))
        # The task offer_freed_slot wrote to the outbox.
        [[payload]] = sql.run(
            "SELECT payload FROM outbox WHERE payload->>'offer_id' = :o AND payload->>'kind' = 'WAITLIST_OFFER'",
            o=str(self.offer_id),
        )
        self.task: dict[str, Any] = payload

    def emailed(self, sql: Conn) -> bool:
        [[at]] = sql.run("SELECT emailed_at FROM waitlist_offers WHERE id = :o", o=self.offer_id)
        return at is not None

    def mails(self, folder: Path) -> list[EmailMessage]:
        return [m for m in read_all(folder) if m["X-Clinic-Offer"] == str(self.offer_id)]


def post(task: dict[str, Any], retry: int = 0) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST /tasks/notify as Cloud Tasks delivers it (attempt retry + 1)."""
    builder = EnvironBuilder(
        method="POST",
        path="/tasks/notify",
        headers={"X-CloudTasks-TaskRetryCount": str(retry)},
        content_type="application/json",
        data=json.dumps(task),
    )
    payload, status, headers = notify_main().router(builder.get_request())
    return status, json.loads(payload), dict(headers)


def outcomes(lines: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """The outcome lines (notify's first call also warns that OIDC verification is off)."""
    return [(line["outcome"], line["kind"], line["attempt"]) for line in lines if "outcome" in line]


def test_an_offer_is_emailed_once(smtp: Path, sql: Conn) -> None:
    held = Held(sql)
    with captured("clinic.notify") as lines:
        first = post(held.task)
        again = post(held.task, retry=1)  # Cloud Tasks delivers at least once
    assert first[:2] == (200, {"result": "sent", "detail": "waitlist offer sent"})
    assert again[1]["result"] == "duplicate"
    assert outcomes(lines) == [("sent", "WAITLIST_OFFER", 1), ("duplicate", "WAITLIST_OFFER", 2)]
    assert {line["message_key"] for line in lines if "outcome" in line} == {held.task["message_key"]}
    [sent] = held.mails(smtp)
    assert sent["X-Envelope-To"] == held.patient.email and sent["X-Clinic-Kind"] == "WAITLIST_OFFER"
    assert held.emailed(sql)


def test_a_relay_down_is_retried_then_failed_at_the_last_attempt(smtp: Path, sql: Conn) -> None:
    held = Held(sql)
    with environment(SMTP_PORT=str(free_port())), captured("clinic.notify") as lines:
        status, problem, headers = post(held.task)
        last = post(held.task, retry=7)  # the 8th and last attempt
    assert status == 503 and problem["status"] == 503 and "mail relay" in problem["detail"]
    assert int(headers["Retry-After"]) > 0
    assert last[:2] == (200, {"result": "failed", "detail": "the offer could not be sent"})
    assert outcomes(lines) == [("retry", "WAITLIST_OFFER", 1), ("failed", "WAITLIST_OFFER", 8)]
    failed = lines[-1]
    assert failed["severity"] == "ERROR" and "Connection" in failed["error"]
    assert held.mails(smtp) == [] and not held.emailed(sql)
    # The relay back before the hold ends: a task still queued sends it.
    assert post(held.task, retry=3)[1]["result"] == "sent" and len(held.mails(smtp)) == 1


def test_an_address_no_email_can_carry_fails_at_once(smtp: Path, sql: Conn) -> None:
    """Rows from before the identity checks tightened may hold one; no retry would help."""
    held = Held(sql)
    sql.run(
        "UPDATE users SET email = :e WHERE id = :id",
        e=f"{held.patient.email}\r\nbcc: x@evil.example",
        id=held.patient.id,
    )
    with captured("clinic.notify") as lines:
        answer = post(held.task)
    assert answer[:2] == (200, {"result": "failed", "detail": "the offer could not be sent"})  # dropped, no retry
    assert outcomes(lines) == [("failed", "WAITLIST_OFFER", 1)] and "cannot be written" in lines[-1]["error"]
    assert held.mails(smtp) == [] and not held.emailed(sql)


@pytest.mark.parametrize("relay_up", [True, False])
def test_an_offer_no_longer_open_is_skipped(smtp: Path, sql: Conn, relay_up: bool) -> None:
    held = Held(sql)
    committed_without_dispatch(lambda uow: waitlist.decline(uow, held.patient, held.entry))
    relay = {} if relay_up else {"SMTP_PORT": str(free_port())}
    with environment(**relay), captured("clinic.notify") as lines:
        answer = post(held.task)
    # Read before connecting: an offer that ended while the relay was down is not retried.
    assert answer[:2] == (200, {"result": "skipped", "detail": "the offer is no longer open"})
    assert outcomes(lines) == [("skipped", "WAITLIST_OFFER", 1)]
    assert held.mails(smtp) == []


@pytest.mark.parametrize(("retry", "lost"), [(7, True), (6, False)])
def test_a_database_down_on_the_last_attempt_leaves_the_offer_in_the_log(
    smtp: Path, sql: Conn, retry: int, lost: bool
) -> None:
    held = Held(sql)
    task = waitlist.WaitlistTask.model_validate(held.task)
    with environment(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/clinic"):
        reset_pool()
        try:
            with pytest.raises(DatabaseUnavailable), captured("clinic.notify") as lines:
                waitlist.send_offer_email(task, retry=retry)  # TASKS_MAX_ATTEMPTS is 8 here
        finally:
            reset_pool()
    assert outcomes(lines) == ([("lost", "WAITLIST_OFFER", 8)] if lost else [])
    if lost:
        assert lines[-1]["payload"] == task.model_dump(mode="json") and lines[-1]["severity"] == "ERROR"
