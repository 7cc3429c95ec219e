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


def task_name(appointment_id: object, kind: str, start: datetime, suffix: int) -> str:
    """Deterministic: appointment, kind, slot start, and the audit id or reminder offset."""
    return f"{appointment_id}-{kind.lower()}-{int(start.timestamp())}-{suffix}"


def appointment_json(appointment: Row) -> dict[str, Any]:
    keys = ("id", "slot_id", "doctor_id", "patient_id", "start_time", "end_time", "status", "reason")
    return {
        k: (v.isoformat() if isinstance(v, datetime) else str(v) if v is not None else None)
        for k, v in appointment.items()
        if k in keys
    }


def record_change(tx: Tx, appointment: Row, action: str, audit_id: int, occurred_at: datetime) -> list[int]:
    """Writes the change's notices, reminders and domain event; returns the new row ids."""
    now = datetime.now(UTC)
    start: datetime = appointment["start_time"]
    appointment_id = appointment["id"]
    if action in ("CANCELLED", "RESCHEDULED"):
        # Reminders for the old time that never left are dropped with the change;
        # those already queued are refused by notify's re-check.
        tx.execute(SQL.drop_pending_tasks, appointment_id=appointment_id)
    rows: list[tuple[str, str, dict[str, Any], datetime]] = []
    if action in _NOTICE:
        kind = _NOTICE[action]
        name = task_name(appointment_id, kind, start, audit_id)
        rows.append(("TASK", name, _task(appointment, kind, name), now))
    if action in _REMINDS:
        for offset in get_settings().reminder_offsets:
            due = start - offset
            if due <= now:
                continue  # an offset already past is skipped
            name = task_name(appointment_id, "REMINDER", start, int(offset.total_seconds()))
            rows.append(("TASK", name, _task(appointment, "REMINDER", name), due))
    event = {
        "type": EVENT_TYPES[action],
        "appointment": appointment_json(appointment),
        "audit_id": audit_id,
        "occurred_at": occurred_at.isoformat(),
    }
    rows.append(("EVENT", f"{appointment_id}-{audit_id}", event, now))
    # One statement for all of them: a booking's round trips are what limits its rate.
    inserted = tx.all(
        SQL.insert_outbox_rows,
        appointment_id=appointment_id,
        rows=json.dumps(
            [
                {"target": target, "name": name, "payload": payload, "deliver_at": deliver_at.isoformat()}
                for target, name, payload, deliver_at in rows
            ]
        ),
    )
    return [int(row["id"]) for row in inserted]


def _task(appointment: Row, kind: str, name: str) -> dict[str, Any]:
    return {
        "message_key": name,
        "appointment_id": str(appointment["id"]),
        "kind": kind,
        "slot_id": str(appointment["slot_id"]),
        "start_time": appointment["start_time"].isoformat(),
    }
