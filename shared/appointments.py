"""Booking, reading and changing appointments: the rules of the system, in one place.

Every change writes its audit row and its outbox messages in the same transaction.
Races are decided by the database: the partial unique index on BOOKED appointments
per slot, and the exclusion constraint on a patient's overlapping bookings.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared import outbox, paging, waitlist
from shared.auth import Caller, require_role
from shared.db.errors import IntegrityViolation
from shared.db.sqlfiles import queries
from shared.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PatientBusy,
    SlotHeld,
    SlotTaken,
    TooManyChanges,
    TooManyUpcoming,
    TransitionNotAllowed,
    Unprocessable,
)
from shared.models import (
    Appointment,
    AppointmentChange,
    AppointmentCreate,
    AppointmentList,
    AppointmentQuery,
    AuditEntry,
    AuditTrail,
    range_bound,
)
from shared.settings import get_settings
from shared.unit_of_work import Row, Transaction, UnitOfWork
from shared.users import check_account, check_reader, ensure_user

SQL = queries("appointments")
USERS = queries("users")
OUTBOX = queries("outbox")

_PUBLIC = tuple(Appointment.model_fields)


def _public(row: Row) -> Appointment:
    return Appointment(**{k: row[k] for k in _PUBLIC})


# book_appointment found no user row for the caller to write under: its email is another account's.
_NO_CALLER_ROW = ("patients_profiles_user_id_fkey", "audit_appointment_actor_id_fkey")


def _raise_conflict(error: IntegrityViolation) -> None:
    if error.constraint == "appointments_one_booked_per_slot":
        raise SlotTaken("this slot is already booked") from error
    if error.constraint == "appointments_patient_no_overlap":
        raise PatientBusy("the patient already has an appointment at that time") from error
    raise error


def _instant(value: datetime) -> str:
    """An instant in UTC written as the API writes every other one: 2027-03-01T09:00:00Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _visible(caller: Caller, row: Row) -> bool:
    return (
        caller.is_admin()
        or (caller.role == "patient" and row["patient_id"] == caller.id)
        or (caller.role == "doctor" and row["doctor_id"] == caller.id)
    )


def _audit(
    uow: UnitOfWork,
    row: Row,
    action: str,
    from_status: str | None,
    actor: Caller,
    reason: str | None,
    details: dict[str, Any],
) -> None:
    tx = uow.tx
    audit = tx.one(
        SQL.insert_audit,
        appointment_id=row["id"],
        action=action,
        from_status=from_status,
        to_status=row["status"],
        actor_id=actor.id,
        reason=reason,
        details=json.dumps(details),
    )
    if action in ("CANCELLED", "RESCHEDULED"):
        # Reminders for the old time that never left go with the change; those already
        # queued are refused by notify's re-check.
        tx.execute(OUTBOX.drop_pending_tasks, appointment_id=row["id"])
    uow.add_outbox_rows(outbox.change_messages(row, action, int(audit["id"]), audit["occurred_at"]))


# -- booking ----------------------------------------------------------------------------


def book(uow: UnitOfWork, caller: Caller, body: AppointmentCreate) -> Appointment:
    """Returns the new appointment and the outbox rows to dispatch after commit.

    The common case, a patient booking for themself, is two statements: the caller's
    user and profile, the appointment and its audit row in one (book_appointment),
    then the outbox rows. The checks keep the order they always had: role, the
    caller's user row (409 on an email of another account), who the patient is,
    the slot (404, 422), then the races (409).
    """
    tx = uow.tx
    require_role(caller, "patient", "admin")
    if caller.is_admin():
        ensure_user(tx, caller)
        if body.patient_id is None:
            raise Unprocessable("an admin books for a patient: give 'patient_id'")
        patient_id = body.patient_id
        if tx.first(USERS.select_patient, user_id=patient_id) is None:
            raise NotFound("no such patient")
    elif body.patient_id not in (None, caller.id):
        ensure_user(tx, caller)
        raise Forbidden("a patient books only for themself")
    else:
        patient_id = caller.id
    settings = get_settings()
    cap = None if caller.is_admin() else settings.max_upcoming_appointments
    # A patient's own bookings count against their changes of the hour; an admin's do not.
    max_changes = None if caller.is_admin() else settings.max_changes_per_hour
    try:
        row = tx.one(
            SQL.book_appointment,
            caller_id=caller.id,
            email=caller.email,
            name=caller.name,
            role=caller.role,
            # A patient who never filled in a profile still gets one, empty, on first booking.
            own_profile=not caller.is_admin(),
            patient_id=patient_id,
            slot_id=body.slot_id,
            reason=body.reason,
            max_upcoming=cap,
            limited_actor=None if max_changes is None else caller.id,
            max_changes=max_changes,
        )
    except IntegrityViolation as error:
        if error.constraint in _NO_CALLER_ROW:
            raise Conflict("this email belongs to another account") from error
        _raise_conflict(error)
        raise
    upcoming = int(row.pop("upcoming"))
    recent_changes = int(row.pop("recent_changes"))
    if row["id"] is None:
        check_account(tx, caller)
        if max_changes is not None and recent_changes >= max_changes:
            raise too_many_changes(tx, caller, max_changes, recent_changes)
        slot = tx.first(SQL.select_slot, id=body.slot_id)
        if slot is not None and slot["started"]:
            raise Unprocessable("this slot is in the past")
        if slot is not None and slot["held"]:
            raise SlotHeld("this slot is held for a patient on the waitlist; it is offered to them first")
        if slot is not None and cap is not None and upcoming >= cap:
            # The count the booking was refused on, not a new one: a cancel since then
            # must not turn the answer into a 404 for a slot that is there.
            raise TooManyUpcoming(
                f"you already hold {cap} upcoming appointments, the most you may book yourself;"
                " cancel one to book another, or ask the clinic"
            )
        # (A slot published between the two statements was not there to book: 404.)
        raise NotFound("no such slot")
    audit_id, occurred_at = int(row.pop("audit_id")), row.pop("audit_occurred_at")
    uow.add_outbox_rows(outbox.change_messages(row, "BOOKED", audit_id, occurred_at))
    return _public(row)


# -- reading ----------------------------------------------------------------------------


def _load_visible(tx: Transaction, caller: Caller, appointment_id: UUID, lock: bool = False) -> Row:
    row = tx.first(SQL.lock_appointment if lock else SQL.select_appointment, id=appointment_id)
    if row is None or not _visible(caller, row):
        # Another patient's appointment is indistinguishable from a missing one.
        raise NotFound("no such appointment")
    return row


def get_appointment(uow: UnitOfWork, caller: Caller, appointment_id: UUID) -> Appointment:
    tx = uow.tx
    check_reader(tx, caller)
    return _public(_load_visible(tx, caller, appointment_id))


def get_audit(uow: UnitOfWork, caller: Caller, appointment_id: UUID) -> AuditTrail:
    tx = uow.tx
    check_reader(tx, caller)
    _load_visible(tx, caller, appointment_id)
    rows = tx.all(SQL.list_audit, appointment_id=appointment_id)
    return AuditTrail(items=[AuditEntry(**row) for row in rows])


def list_appointments(uow: UnitOfWork, caller: Caller, query: AppointmentQuery) -> AppointmentList:
    tx = uow.tx
    check_reader(tx, caller)
    if caller.role == "patient" and query.patient_id not in (None, caller.id):
        raise Forbidden("a patient reads only their own appointments")
    after = paging.decode(query.page_token, {"start": paging.timestamp, "id": paging.uuid})
    rows = tx.all(
        SQL.list_appointments,
        patient_id=caller.id if caller.role == "patient" else query.patient_id,
        doctor_id=caller.id if caller.role == "doctor" else None,
        status=query.status,
        range_start=range_bound(query.from_),
        range_end=range_bound(query.to, end=True),
        after_start=after["start"] if after else None,
        after_id=after["id"] if after else None,
        limit=query.page_size + 1,
    )
    items = [_public(row) for row in rows[: query.page_size]]
    token = None
    if len(rows) > query.page_size:
        token = paging.encode({"start": items[-1].start_time.isoformat(), "id": items[-1].id})
    return AppointmentList(items=items, next_page_token=token)


# -- changing ---------------------------------------------------------------------------


def change(uow: UnitOfWork, caller: Caller, appointment_id: UUID, body: AppointmentChange) -> Appointment:
    tx = uow.tx
    ensure_user(tx, caller)
    if body.slot_id is not None:
        return _move(uow, caller, appointment_id, body.slot_id, body.reason)
    assert body.status is not None
    row = _load_visible(tx, caller, appointment_id, lock=True)
    if body.status in ("COMPLETED", "NO_SHOW"):
        require_role(caller, "doctor", "admin")
        if row["status"] != "BOOKED":
            raise TransitionNotAllowed(f"a {row['status']} appointment cannot become {body.status}")
        if not row["started"]:
            raise TransitionNotAllowed(f"{body.status} is allowed only once the slot has started")
    elif row["status"] != "BOOKED":
        raise TransitionNotAllowed(f"a {row['status']} appointment cannot be cancelled")
    elif row["started"] and caller.role == "patient":
        # Once the visit has begun the clinic records what became of it (COMPLETED,
        # NO_SHOW, or CANCELLED when the clinic called it off); the patient no longer can.
        raise TransitionNotAllowed("the appointment has started: only the clinic can cancel it now")
    cancelling = body.status == "CANCELLED"
    if cancelling and not row["started"]:
        # The slot before the appointment (decision 0013): a booking racing this cancel
        # then meets the hold written below, or fails at once on the BOOKED row.
        waitlist.lock_slot(tx, row["slot_id"])
    updated = tx.one(SQL.update_status, id=appointment_id, status=body.status)
    _audit(uow, updated, body.status, row["status"], caller, body.reason, {})
    if cancelling and not row["started"]:
        waitlist.offer_freed_slot(uow, row["slot_id"], caller.id, "cancelled")
    return _public(updated)


def _move(uow: UnitOfWork, caller: Caller, appointment_id: UUID, slot_id: UUID, reason: str | None) -> Appointment:
    tx = uow.tx
    # A patient's own moves count against their changes of the hour; a doctor's or an
    # admin's do not. (Cancelling is never refused for it: it frees the slot.)
    max_changes = get_settings().max_changes_per_hour if caller.role == "patient" else None
    turn = tx.first(SQL.take_patients_turn, id=appointment_id, limited_actor=None if max_changes is None else caller.id)
    row = _load_visible(tx, caller, appointment_id, lock=True)
    if turn is not None and max_changes is not None and turn["recent_changes"] >= max_changes:
        raise too_many_changes(tx, caller, max_changes, int(turn["recent_changes"]))
    if row["status"] != "BOOKED":
        raise TransitionNotAllowed(f"a {row['status']} appointment cannot be moved")
    if row["started"]:
        raise TransitionNotAllowed("the appointment has started: it can no longer be moved")
    if row["slot_id"] == slot_id:
        raise Unprocessable("the appointment is already on this slot")
    slots = {s["id"]: s for s in tx.all(SQL.lock_slots, ids=sorted([row["slot_id"], slot_id]))}
    target = slots.get(slot_id)
    if target is None:
        raise NotFound("no such slot")
    if target["started"]:
        raise Unprocessable("the new slot is in the past")
    if target["held_offer_id"] is not None:
        raise SlotHeld("this slot is held for a patient on the waitlist")
    try:
        with tx.savepoint():
            updated = tx.one(
                SQL.update_slot,
                id=appointment_id,
                slot_id=target["id"],
                doctor_id=target["doctor_id"],
                start_time=target["start_time"],
                end_time=target["end_time"],
            )
    except IntegrityViolation as error:
        _raise_conflict(error)
        raise
    # Enough to tell the whole move from the trail alone, across doctors too.
    details = {
        "from_slot_id": str(row["slot_id"]),
        "to_slot_id": str(slot_id),
        "from_doctor_id": str(row["doctor_id"]),
        "to_doctor_id": str(target["doctor_id"]),
        "from_start_time": _instant(row["start_time"]),
        "to_start_time": _instant(target["start_time"]),
        "from_end_time": _instant(row["end_time"]),
        "to_end_time": _instant(target["end_time"]),
    }
    _audit(uow, updated, "RESCHEDULED", "BOOKED", caller, reason, details)
    # The slot moved away from is free: held for the waitlist in this transaction.
    waitlist.offer_freed_slot(uow, row["slot_id"], caller.id, "moved away")
    return _public(updated)


def too_many_changes(tx: Transaction, caller: Caller, limit: int, made: int) -> TooManyChanges:
    """The refusal of a patient's change past `limit` in the hour, saying when the next
    one will be allowed: when enough of the hour's changes have aged out (more than one
    after cancels, which are never refused, took the count past the limit)."""
    row = tx.first(SQL.seconds_until_changes_fall_below, actor=caller.id, skip=max(0, made - limit))
    wait = max(1, int(row["wait"]) if row else 1)
    return TooManyChanges(
        f"you made {made} changes to your appointments in the last hour, the most allowed is {limit};"
        f" try again in {math.ceil(wait / 60)} minutes, or ask the clinic",
        retry_after=wait,
    )
