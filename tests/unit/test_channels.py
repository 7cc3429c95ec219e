"""The channel seam (shared/channels.py): notify sends through a Channel, email is one,
and the outbox writes one task per channel in NOTIFY_CHANNELS. No I/O: a recording
transaction and a recording channel stand in for PostgreSQL and the mail relay."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from shared import channels, mail, notify, outbox
from shared.enums import AuditAction, ChannelName
from shared.notify import SQL, TaskMessage
from shared.settings import Settings

APPOINTMENT = uuid.UUID("4b0f6a43-1111-4000-8000-000000000001")
SLOT = uuid.UUID("4b0f6a43-2222-4000-8000-000000000002")
DOCTOR = uuid.UUID("4b0f6a43-3333-4000-8000-000000000003")


def start() -> datetime:
    return (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)


def appointment(at: datetime) -> dict[str, Any]:
    return {
        "id": APPOINTMENT,
        "slot_id": SLOT,
        "doctor_id": DOCTOR,
        "patient_id": uuid.uuid4(),
        "start_time": at,
        "end_time": at + timedelta(minutes=30),
        "status": "BOOKED",
        "reason": None,
    }


# -- the outbox: one task per channel ------------------------------------------------------


def tasks(monkeypatch: pytest.MonkeyPatch, channel_names: tuple[str, ...], action: str = "BOOKED") -> list[Any]:
    # model_construct: "sms" is not a channel yet, but the outbox only needs its name.
    settings = Settings.model_construct(notify_channels=channel_names, reminder_offsets=(timedelta(hours=24),))
    monkeypatch.setattr(outbox, "get_settings", lambda: settings)
    rows = outbox.change_messages(appointment(start()), action, 42, datetime.now(UTC))
    return [row for row in rows if row["target"] == "TASK"]


def test_email_tasks_keep_their_names_and_say_their_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    at = start()
    confirmation, reminder = tasks(monkeypatch, ("email",))
    assert confirmation["name"] == outbox.task_name(APPOINTMENT, "CONFIRMATION", at, 42)
    assert confirmation["name"] == f"{APPOINTMENT}-confirmation-{int(at.timestamp())}-42"
    assert reminder["name"] == f"{APPOINTMENT}-reminder-{SLOT}-86400"
    assert {row["payload"]["channel"] for row in (confirmation, reminder)} == {"email"}
    assert TaskMessage.model_validate(confirmation["payload"]).channel == "email"


def test_each_channel_gets_tasks_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = tasks(monkeypatch, ("email", "sms"))
    assert [(row["payload"]["channel"], row["payload"]["kind"]) for row in rows] == [
        ("email", "CONFIRMATION"),
        ("email", "REMINDER"),
        ("sms", "CONFIRMATION"),
        ("sms", "REMINDER"),
    ]
    names = [row["name"] for row in rows]
    assert len(set(names)) == 4  # each is sent, retried and recorded on its own
    sms_confirmation = rows[2]
    assert "-sms-confirmation-" in sms_confirmation["name"]
    # notify still reads the change a notice is about from the name's last part.
    assert notify.audit_id_of("CONFIRMATION", sms_confirmation["name"]) == 42
    assert tasks(monkeypatch, ()) == []  # no channel, no notices (the event still goes)


def test_a_task_without_a_channel_is_email_and_an_unknown_channel_is_refused() -> None:
    at = start()
    body = {
        "message_key": outbox.task_name(APPOINTMENT, "CONFIRMATION", at, 42),
        "appointment_id": str(APPOINTMENT),
        "kind": "CONFIRMATION",
        "slot_id": str(SLOT),
        "start_time": at.isoformat(),
        "audit_id": 42,
    }
    assert TaskMessage.model_validate(body).channel == "email"  # queued before channels
    with pytest.raises(ValidationError):
        TaskMessage.model_validate({**body, "channel": "carrier-pigeon"})


def test_notify_channels_names_only_channels_that_exist() -> None:
    assert Settings().notify_channels == ("email",)
    assert Settings.model_validate({"notify_channels": " email "}).notify_channels == ("email",)
    assert Settings.model_validate({"notify_channels": ""}).notify_channels == ()
    with pytest.raises(ValidationError):
        Settings.model_validate({"notify_channels": "email,fax"})


def test_every_channel_name_has_its_channel() -> None:
    assert set(notify.CHANNELS) == set(get_args(ChannelName))


# -- email is a channel ----------------------------------------------------------------


def test_email_reaches_the_patients_address_and_its_errors_are_the_channels() -> None:
    email = notify.CHANNELS["email"]
    assert email.address({"patient_email": "pat@example.com", "patient_phone": "+4930123"}) == "pat@example.com"
    assert email.carrier == "mail relay"  # "mail relay unavailable; Cloud Tasks will retry"
    assert issubclass(mail.MailRejected, channels.MessageRejected)
    assert issubclass(mail.MailUnavailable, channels.ChannelUnavailable)


# -- delivery is written against the protocol --------------------------------------------


class RecordingTx:
    """Answers notify's statements with one booked appointment; keeps what was written."""

    def __init__(self, at: datetime) -> None:
        self.locked = {
            **appointment(at),
            "started": False,
            "patient_email": "pat@example.com",
            "patient_phone": None,
            "patient_name": "Pat",
            "doctor_name": "Dr. Who",
            "doctor_timezone": "Europe/Berlin",
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def first(self, sql: str, **params: Any) -> dict[str, Any] | None:
        assert sql == SQL.lock_message_context
        self.calls.append(("lock_message_context", params))
        return self.locked

    def all(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        assert sql == SQL.select_told_notices
        self.calls.append(("select_told_notices", params))
        return []

    def one(self, sql: str, **params: Any) -> dict[str, Any]:
        if sql == SQL.select_calendar_context:
            self.calls.append(("select_calendar_context", params))
            return {"changes": 0, "was_start_time": None, "was_end_time": None}
        assert sql == SQL.insert_notification
        self.calls.append(("insert_notification", params))
        return {"id": 1}

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        yield


class Pigeon:
    """A channel that reaches a patient by their phone number and keeps what it sends."""

    carrier = "loft"

    def __init__(self) -> None:
        self.sent: list[mail.Notice] = []

    def address(self, contact: Mapping[str, Any]) -> str | None:
        phone = contact["patient_phone"]
        return None if phone is None else str(phone)

    def send_notice(self, notice: mail.Notice) -> None:
        self.sent.append(notice)

    @contextmanager
    def connect(self, settings: Settings) -> Iterator[Pigeon]:
        yield self


def confirmation(at: datetime) -> TaskMessage:
    name = outbox.task_name(APPOINTMENT, "CONFIRMATION", at, 42)
    return TaskMessage.model_validate(
        outbox.task_payload(outbox.appointment_json(appointment(at)), "CONFIRMATION", name, 42)
    )


def test_delivery_sends_to_the_channels_address_and_records_it() -> None:
    at = start()
    tx, pigeon = RecordingTx(at), Pigeon()
    tx.locked["patient_phone"] = "+4930123"
    outcome = notify._send_once(tx, pigeon, pigeon, confirmation(at), 1, {})  # type: ignore[arg-type]
    assert outcome.result == "sent"
    [notice] = pigeon.sent
    assert (notice.recipient, notice.kind, notice.appointment_id) == ("+4930123", "CONFIRMATION", str(APPOINTMENT))
    written = dict(tx.calls)["insert_notification"]
    assert (written["recipient"], written["channel"], written["status"]) == ("+4930123", "email", "SENT")
    # What the patient heard is read per channel: each channel's notices are its own.
    assert dict(tx.calls)["select_told_notices"]["channel"] == "email"


def test_a_patient_the_channel_cannot_reach_is_skipped() -> None:
    at = start()
    tx, pigeon = RecordingTx(at), Pigeon()
    outcome = notify._send_once(tx, pigeon, pigeon, confirmation(at), 1, {})  # type: ignore[arg-type]
    assert outcome.result == "skipped" and "no email address" in outcome.detail
    assert pigeon.sent == [] and "insert_notification" not in dict(tx.calls)


def test_email_sends_through_the_relay_it_connected(monkeypatch: pytest.MonkeyPatch) -> None:
    at = start()
    sent: list[tuple[str, str]] = []
    relay = mail.Relay.__new__(mail.Relay)  # not connected: send is replaced below
    relay._settings = Settings(mail_from="Clinic <no-reply@clinic.example>")
    monkeypatch.setattr(relay, "send", lambda message, recipient: sent.append((message["X-Clinic-Kind"], recipient)))
    outcome = notify._send_once(RecordingTx(at), notify.CHANNELS["email"], relay, confirmation(at), 1, {})
    assert outcome.result == "sent" and sent == [("CONFIRMATION", "pat@example.com")]


# -- a new state needs no new event type ----------------------------------------------------


def test_each_action_publishes_the_event_design_md_names() -> None:
    named = {
        "BOOKED": "appointment.booked",
        "CANCELLED": "appointment.cancelled",
        "RESCHEDULED": "appointment.rescheduled",
        "COMPLETED": "appointment.completed",
        "NO_SHOW": "appointment.no_show",
    }
    assert {action: outbox.event_type(action) for action in named} == named
    assert set(named) <= set(get_args(AuditAction))
    assert outbox.event_type("CHECKED_IN") == "appointment.checked_in"  # a state added later
