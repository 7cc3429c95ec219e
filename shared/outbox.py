"""The outbox: messages a change must cause, written in the change's transaction.

Two targets: TASK rows become Cloud Tasks for the notify function (deterministic
names, so a second dispatch is harmless) and EVENT rows become Pub/Sub domain
events. Dispatch happens after commit (shared.dispatch) and again in the sweep.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.db.sqlfiles import queries
from shared.settings import get_settings
from shared.unit_of_work import Row, Transaction

SQL = queries("outbox")

# What each audit action tells the patient.
_NOTICE = {"BOOKED": "CONFIRMATION", "CANCELLED": "CANCELLATION", "RESCHEDULED": "RESCHEDULED"}
# Actions after which reminders for the (new) start time are due.
_REMINDS = {"BOOKED", "RESCHEDULED"}


def event_type(action: str) -> str:
    """The domain event of an audit action: appointment.booked, appointment.no_show, ..."""
    return f"appointment.{action.lower()}"


def task_name(appointment_id: object, kind: str, start: datetime, audit_id: int, channel: str = "email") -> str:
    """A notice's: deterministic, one per change and channel (appointment, kind, slot
    start, audit id). The audit id stays last: notify reads it back (notify.audit_id_of)."""
    return f"{appointment_id}-{_via(channel)}{kind.lower()}-{int(start.timestamp())}-{audit_id}"


def reminder_name(appointment_id: object, slot_id: object, offset_s: int, channel: str = "email") -> str:
    """A reminder's: one per appointment, slot, offset and channel. A reminder asserts
    its slot (notify sends it only while the appointment is on that slot), so a move to
    another doctor's slot at the same time needs a reminder of its own; a move away and
    back again finds the first one still true, and sends it once."""
    return f"{appointment_id}-{_via(channel)}reminder-{slot_id}-{offset_s}"


def _via(channel: str) -> str:
    # Email's names have no channel part: those of tasks queued before channels existed.
    return "" if channel == "email" else f"{channel}-"


_APPOINTMENT_KEYS = ("id", "slot_id", "doctor_id", "patient_id", "start_time", "end_time", "status", "reason")


def appointment_json(appointment: Row) -> dict[str, Any]:
    return {k: _json_value(appointment[k]) for k in _APPOINTMENT_KEYS if k in appointment}


def _json_value(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def change_messages(appointment: Row, action: str, audit_id: int, occurred_at: datetime) -> list[dict[str, Any]]:
    """The outbox rows a change causes: the patient's notice, reminders for the (new)
    start time, and the domain event. The unit of work writes them with its COMMIT."""
    now = datetime.now(UTC)
    start: datetime = appointment["start_time"]
    # Every message carries the appointment as JSON strings: made once, not per message
    # (a booking's Python time is what limits its rate on a small machine).
    view = appointment_json(appointment)
    appointment_id = view["id"]
    settings = get_settings()
    rows: list[dict[str, Any]] = []
    # Each notice goes out once per channel, as a task of its own: each channel is sent,
    # retried and recorded on its own.
    for channel in settings.notify_channels:
        if action in _NOTICE:
            kind = _NOTICE[action]
            name = task_name(appointment_id, kind, start, audit_id, channel)
            rows.append(_row(appointment_id, "TASK", name, task_payload(view, kind, name, audit_id, channel), now))
        if action in _REMINDS:
            for offset in settings.reminder_offsets:
                due = start - offset
                if due <= now:
                    continue  # an offset already past is skipped
                name = reminder_name(appointment_id, view["slot_id"], int(offset.total_seconds()), channel)
                payload = task_payload(view, "REMINDER", name, None, channel)
                rows.append(_row(appointment_id, "TASK", name, payload, due))
    event = {
        "type": event_type(action),
        "appointment": view,
        "audit_id": audit_id,
        "occurred_at": occurred_at.isoformat(),
    }
    rows.append(_row(appointment_id, "EVENT", f"{appointment_id}-{audit_id}", event, now))
    return rows


def _row(appointment_id: str, target: str, name: str, payload: dict[str, Any], deliver_at: datetime) -> dict[str, Any]:
    return {
        "appointment_id": appointment_id,
        "target": target,
        "name": name,
        "payload": payload,
        "deliver_at": deliver_at.isoformat(),
    }


def task_payload(
    view: dict[str, Any], kind: str, name: str, audit_id: int | None, channel: str = "email"
) -> dict[str, Any]:
    """What the notify function receives; `view` is appointment_json of the appointment,
    `audit_id` the change a notice is about (None for a reminder)."""
    return {
        "message_key": name,
        "appointment_id": view["id"],
        "kind": kind,
        "slot_id": view["slot_id"],
        "start_time": view["start_time"],
        "audit_id": audit_id,
        "channel": channel,
    }


# -- sending again what failed ---------------------------------------------------------


def failed_messages(tx: Transaction, since: datetime) -> list[Row]:
    """Messages recorded FAILED since `since` (the relay was down longer than the retry
    budget, say) that have not been sent since."""
    return tx.all(SQL.select_failed_messages, since=since)


def requeue(tx: Transaction, failed: list[Row]) -> list[int]:
    """Queues each message again as a new task row; the sweep dispatches them. Notify
    checks each against the database as ever: one that is no longer true is skipped."""
    ids: list[int] = []
    for message in failed:
        row = tx.first(SQL.requeue_message, message_key=message["message_key"], suffix=str(message["notification_id"]))
        if row is not None:  # None: already queued again for this failure
            ids.append(int(row["id"]))
    return ids


def kept_message(tx: Transaction, message_key: str) -> Row | None:
    """The task message of that key while the outbox keeps it, and whether it was sent."""
    return tx.first(SQL.select_kept_message, message_key=message_key)


def resend(tx: Transaction, message_key: str, now: datetime) -> int | None:
    """Queues a kept message again under a new task name: for a message no FAILED row
    records, one whose last attempt found the database down. None: queued again already
    at this very moment."""
    row = tx.first(SQL.requeue_message, message_key=message_key, suffix=f"{now:%Y%m%dT%H%M%S%fZ}")
    return None if row is None else int(row["id"])
