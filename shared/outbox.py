"""The outbox: messages a change must cause, written in the change's transaction.

Two targets: TASK rows become Cloud Tasks for the notify function (deterministic
names, so a second dispatch is harmless) and EVENT rows become Pub/Sub domain
events. Dispatch happens after commit (shared.dispatch) and again in the sweep.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from shared.db import Row, Tx, queries
from shared.settings import get_settings

SQL = queries("outbox")

# What each audit action tells the patient.
_NOTICE = {"BOOKED": "CONFIRMATION", "CANCELLED": "CANCELLATION", "RESCHEDULED": "RESCHEDULED"}
# Actions after which reminders for the (new) start time are due.
_REMINDS = {"BOOKED", "RESCHEDULED"}
EVENT_TYPES = {
    "BOOKED": "appointment.booked",
    "CANCELLED": "appointment.cancelled",
    "RESCHEDULED": "appointment.rescheduled",
    "COMPLETED": "appointment.completed",
    "NO_SHOW": "appointment.no_show",
}


def task_name(appointment_id: object, kind: str, start: datetime, audit_id: int) -> str:
    """A notice's: deterministic, one per change (appointment, kind, slot start, audit id)."""
    return f"{appointment_id}-{kind.lower()}-{int(start.timestamp())}-{audit_id}"


def reminder_name(appointment_id: object, slot_id: object, offset_s: int) -> str:
    """A reminder's: one per appointment, slot and offset. A reminder asserts its slot
    (notify sends it only while the appointment is on that slot), so a move to another
    doctor's slot at the same time needs a reminder of its own; a move away and back
    again finds the first one still true, and sends it once."""
    return f"{appointment_id}-reminder-{slot_id}-{offset_s}"


_APPOINTMENT_KEYS = ("id", "slot_id", "doctor_id", "patient_id", "start_time", "end_time", "status", "reason")


def appointment_json(appointment: Row) -> dict[str, Any]:
    return {k: _json_value(appointment[k]) for k in _APPOINTMENT_KEYS if k in appointment}


def _json_value(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def record_change(tx: Tx, appointment: Row, action: str, audit_id: int, occurred_at: datetime) -> list[int]:
    """Writes the change's notices, reminders and domain event; returns the new row ids
    (filled in when the statement has run, at the latest when the transaction commits)."""
    now = datetime.now(UTC)
    start: datetime = appointment["start_time"]
    # Every message carries the appointment as JSON strings: made once, not per message
    # (a booking's Python time is what limits its rate on a small machine).
    view = appointment_json(appointment)
    appointment_id = view["id"]
    if action in ("CANCELLED", "RESCHEDULED"):
        # Reminders for the old time that never left are dropped with the change;
        # those already queued are refused by notify's re-check.
        tx.execute(SQL.drop_pending_tasks, appointment_id=appointment_id)
    rows: list[dict[str, Any]] = []
    if action in _NOTICE:
        kind = _NOTICE[action]
        name = task_name(appointment_id, kind, start, audit_id)
        rows.append(_row("TASK", name, _task_payload(view, kind, name), now))
    if action in _REMINDS:
        for offset in get_settings().reminder_offsets:
            due = start - offset
            if due <= now:
                continue  # an offset already past is skipped
            name = reminder_name(appointment_id, view["slot_id"], int(offset.total_seconds()))
            rows.append(_row("TASK", name, _task_payload(view, "REMINDER", name), due))
    event = {
        "type": EVENT_TYPES[action],
        "appointment": view,
        "audit_id": audit_id,
        "occurred_at": occurred_at.isoformat(),
    }
    rows.append(_row("EVENT", f"{appointment_id}-{audit_id}", event, now))
    # One statement for all of them, and it waits for nothing: it goes to the database with
    # the transaction's next statement or its COMMIT (a booking's round trips are what
    # limits its rate). The ids are in the list once the transaction has committed.
    ids: list[int] = []
    tx.later(
        SQL.insert_outbox_rows,
        lambda inserted: ids.extend(int(row["id"]) for row in inserted),
        appointment_id=appointment_id,
        rows=json.dumps(rows),
    )
    return ids


def _row(target: str, name: str, payload: dict[str, Any], deliver_at: datetime) -> dict[str, Any]:
    return {"target": target, "name": name, "payload": payload, "deliver_at": deliver_at.isoformat()}


def _task_payload(view: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    """What the notify function receives; `view` is appointment_json of the appointment."""
    return {
        "message_key": name,
        "appointment_id": view["id"],
        "kind": kind,
        "slot_id": view["slot_id"],
        "start_time": view["start_time"],
    }


# -- sending again what failed ---------------------------------------------------------


def failed_messages(tx: Tx, since: datetime) -> list[Row]:
    """Messages recorded FAILED since `since` (the relay was down longer than the retry
    budget, say) that have not been sent since."""
    return tx.all(SQL.select_failed_messages, since=since)


def requeue(tx: Tx, failed: list[Row]) -> list[int]:
    """Queues each message again as a new task row; the sweep dispatches them. Notify
    checks each against the database as ever: one that is no longer true is skipped."""
    ids: list[int] = []
    for message in failed:
        row = tx.first(SQL.requeue_message, message_key=message["message_key"], suffix=str(message["notification_id"]))
        if row is not None:  # None: already queued again for this failure
            ids.append(int(row["id"]))
    return ids


def kept_message(tx: Tx, message_key: str) -> Row | None:
    """The task message of that key while the outbox keeps it, and whether it was sent."""
    return tx.first(SQL.select_kept_message, message_key=message_key)


def resend(tx: Tx, message_key: str, now: datetime) -> int | None:
    """Queues a kept message again under a new task name: for a message no FAILED row
    records, one whose last attempt found the database down. None: queued again already
    at this very moment."""
    row = tx.first(SQL.requeue_message, message_key=message_key, suffix=f"{now:%Y%m%dT%H%M%S%fZ}")
    return None if row is None else int(row["id"])
