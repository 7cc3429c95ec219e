"""The appointment use cases: book, change (cancel, complete, no-show, move) and the reads.

Each takes the unit of work, the caller and a command, and reads top to bottom as
named steps: authorise, take the patient's turn, check the caps, write, audit, outbox.
A refusal is raised by the step that decides it; the booking's steps after authorise
are one statement (one round trip), which reports which of its checks refused.
Races are decided by the database: the partial unique index on BOOKED appointments
per slot, and the exclusion constraint on a patient's overlapping bookings.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from shared import outbox, paging, waitlist
from shared.auth import Caller
from shared.errors import (
    Conflict,
    Forbidden,
    NotFound,
    SlotHeld,
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
from shared.policy import Action, allows, authorise, covers_anyone
from shared.repositories import (
    Accounts,
    Appointments,
    Booked,
    Booking,
    Holds,
    Patients,
    Row,
    account_of_another_role,
)
from shared.settings import get_settings

_APPOINTMENT_FIELDS = tuple(Appointment.model_fields)
# What the clinic records once the slot has started, each from the statuses it may follow.
OUTCOMES: dict[str, tuple[str, ...]] = {"COMPLETED": ("BOOKED",), "NO_SHOW": ("BOOKED",)}


class Work(Protocol):
    """What these use cases need of a unit of work (a fake one in unit tests)."""

    accounts: Accounts
    patients: Patients
    appointments: Appointments
    holds: Holds

    def add_outbox_rows(self, rows: list[dict[str, Any]]) -> None: ...


# -- booking ----------------------------------------------------------------------------


def book(uow: Work, caller: Caller, command: AppointmentCreate) -> Appointment:
    patient_id = _authorise_booking(uow, caller, command)
    # The patient's turn, the caps, the appointment and its audit row: one statement.
    booked = uow.appointments.book(_booking(caller, patient_id, command))
    _raise_refusal(uow, caller, booked)
    assert booked.appointment is not None and booked.audit_id is not None and booked.audit_occurred_at
    _write_outbox(uow, booked.appointment, "BOOKED", booked.audit_id, booked.audit_occurred_at)
    return _as_appointment(booked.appointment)


def _authorise_booking(uow: Work, caller: Caller, command: AppointmentCreate) -> UUID:
    """Who the appointment is for: the caller, or the patient they may book for."""
    authorise(caller, Action.BOOK)
    if command.patient_id in (None, caller.id) and allows(caller, Action.HOLD_APPOINTMENTS):
        return caller.id  # the booking statement makes their account and profile on first use
    uow.accounts.ensure(caller)
    if command.patient_id is None:
        raise Unprocessable("book for a patient: give 'patient_id'")
    authorise(caller, Action.BOOK, owners=[command.patient_id])
    if uow.patients.get(command.patient_id) is None:
        raise NotFound("no such patient")
    return command.patient_id


def _booking(caller: Caller, patient_id: UUID, command: AppointmentCreate) -> Booking:
    settings = get_settings()
    return Booking(
        caller=caller,
        patient_id=patient_id,
        slot_id=command.slot_id,
        reason=command.reason,
        max_upcoming=None if allows(caller, Action.BOOK_PAST_UPCOMING_CAP) else settings.max_upcoming_appointments,
        max_changes=None if allows(caller, Action.CHANGE_PAST_HOURLY_LIMIT) else settings.max_changes_per_hour,
    )


def _raise_refusal(uow: Work, caller: Caller, booked: Booked) -> None:
    """The refusal the booking statement reported, in the order it checks."""
    match booked.refusal:
        case None:
            return
        case "account_role":
            raise account_of_another_role(str(booked.account_role), caller)
        case "no_account":
            raise Conflict("this email belongs to another account")
        case "too_many_changes":
            raise too_many_changes(uow, caller, get_settings().max_changes_per_hour, booked.recent_changes)
        case "slot_started":
            raise Unprocessable("this slot is in the past")
        case "slot_held":
            raise SlotHeld("this slot is held for a patient on the waitlist; it is offered to them first")
        case "too_many_upcoming":
            cap = get_settings().max_upcoming_appointments
            raise TooManyUpcoming(
                f"you already hold {cap} upcoming appointments, the most you may book yourself;"
                " cancel one to book another, or ask the clinic"
            )
        case "no_slot":
            raise NotFound("no such slot")


# -- changing ---------------------------------------------------------------------------


def change(uow: Work, caller: Caller, appointment_id: UUID, command: AppointmentChange) -> Appointment:
    """Cancel, complete, no-show or move, as the command says."""
    uow.accounts.ensure(caller)
    if command.slot_id is not None:
        return move(uow, caller, appointment_id, command.slot_id, command.reason)
    assert command.status is not None
    if command.status == "CANCELLED":
        return cancel(uow, caller, appointment_id, command.reason)
    return record_outcome(uow, caller, appointment_id, command.status, command.reason)


def cancel(uow: Work, caller: Caller, appointment_id: UUID, reason: str | None) -> Appointment:
    row = _visible(uow, caller, appointment_id, lock=True)
    authorise(caller, Action.CANCEL, owners=_owners(row))
    if row["status"] != "BOOKED":
        raise TransitionNotAllowed(f"a {row['status']} appointment cannot be cancelled")
    if row["started"] and not allows(caller, Action.CANCEL_STARTED, _owners(row)):
        # Once the visit has begun the clinic records what became of it.
        raise TransitionNotAllowed("the appointment has started: only the clinic can cancel it now")
    frees_a_slot = not row["started"]
    if frees_a_slot:
        # The slot before the appointment (decision 0013): a booking racing this cancel
        # then meets the hold written below, or fails at once on the BOOKED row.
        uow.holds.lock_slot(row["slot_id"])
    cancelled = _set_status(uow, caller, row, "CANCELLED", reason)
    if frees_a_slot:
        waitlist.offer_freed_slot(uow, row["slot_id"], caller.id, "cancelled")
    return cancelled


def record_outcome(uow: Work, caller: Caller, appointment_id: UUID, status: str, reason: str | None) -> Appointment:
    """One of OUTCOMES, once the slot has started."""
    row = _visible(uow, caller, appointment_id, lock=True)
    authorise(caller, Action.RECORD_OUTCOME, owners=_owners(row))
    if row["status"] not in OUTCOMES[status]:
        raise TransitionNotAllowed(f"a {row['status']} appointment cannot become {status}")
    if not row["started"]:
        raise TransitionNotAllowed(f"{status} is allowed only once the slot has started")
    return _set_status(uow, caller, row, status, reason)


def _set_status(uow: Work, caller: Caller, row: Row, status: str, reason: str | None) -> Appointment:
    updated = uow.appointments.set_status(row["id"], status)
    audit_id, occurred_at = uow.appointments.record_audit(updated, status, row["status"], caller, reason, {})
    _write_outbox(uow, updated, status, audit_id, occurred_at)
    return _as_appointment(updated)


def move(uow: Work, caller: Caller, appointment_id: UUID, slot_id: UUID, reason: str | None) -> Appointment:
    # Cancelling is never limited (it frees the slot); moving is, for those it counts.
    limit = None if allows(caller, Action.CHANGE_PAST_HOURLY_LIMIT) else get_settings().max_changes_per_hour
    # The patient's turn first, so the lock order stays turn, appointment, slots.
    recent_changes = uow.appointments.take_patients_turn(appointment_id, None if limit is None else caller.id)
    row = _visible(uow, caller, appointment_id, lock=True)
    authorise(caller, Action.MOVE, owners=_owners(row))
    if limit is not None and recent_changes is not None and recent_changes >= limit:
        raise too_many_changes(uow, caller, limit, recent_changes)
    if row["status"] != "BOOKED":
        raise TransitionNotAllowed(f"a {row['status']} appointment cannot be moved")
    if row["started"]:
        raise TransitionNotAllowed("the appointment has started: it can no longer be moved")
    if row["slot_id"] == slot_id:
        raise Unprocessable("the appointment is already on this slot")
    # Both slots locked in primary-key order, so two moves never deadlock.
    target = uow.appointments.lock_slots([row["slot_id"], slot_id]).get(slot_id)
    if target is None:
        raise NotFound("no such slot")
    if target["started"]:
        raise Unprocessable("the new slot is in the past")
    if target["held_offer_id"] is not None:
        raise SlotHeld("this slot is held for a patient on the waitlist")
    updated = uow.appointments.move(appointment_id, target)
    audit_id, occurred_at = uow.appointments.record_audit(
        updated, "RESCHEDULED", "BOOKED", caller, reason, _move_details(row, target)
    )
    _write_outbox(uow, updated, "RESCHEDULED", audit_id, occurred_at)
    # The slot moved away from is free: held for the waitlist in this unit of work.
    waitlist.offer_freed_slot(uow, row["slot_id"], caller.id, "moved away")
    return _as_appointment(updated)


def _move_details(row: Row, target: Row) -> dict[str, str]:
    """Enough to tell the whole move from the trail alone, across doctors too."""
    return {
        "from_slot_id": str(row["slot_id"]),
        "to_slot_id": str(target["id"]),
        "from_doctor_id": str(row["doctor_id"]),
        "to_doctor_id": str(target["doctor_id"]),
        "from_start_time": _instant(row["start_time"]),
        "to_start_time": _instant(target["start_time"]),
        "from_end_time": _instant(row["end_time"]),
        "to_end_time": _instant(target["end_time"]),
    }


def too_many_changes(uow: Work, caller: Caller, limit: int, made: int) -> TooManyChanges:
    """The refusal of a patient's change past `limit` in the hour, saying when the next
    one will be allowed: when enough of the hour's changes have aged out (more than one
    after cancels, which are never refused, took the count past the limit)."""
    wait = uow.appointments.seconds_until_changes_fall_below(caller.id, skip=max(0, made - limit))
    return TooManyChanges(
        f"you made {made} changes to your appointments in the last hour, the most allowed is {limit};"
        f" try again in {math.ceil(wait / 60)} minutes, or ask the clinic",
        retry_after=wait,
    )


def _write_outbox(uow: Work, row: Row, action: str, audit_id: int, occurred_at: datetime) -> None:
    if action in ("CANCELLED", "RESCHEDULED"):
        # Reminders for the old time that never left go with the change; those already
        # queued are refused by notify's re-check.
        uow.appointments.drop_pending_tasks(row["id"])
    uow.add_outbox_rows(outbox.change_messages(row, action, audit_id, occurred_at))


# -- reading ----------------------------------------------------------------------------


def get_appointment(uow: Work, caller: Caller, appointment_id: UUID) -> Appointment:
    uow.accounts.check_reader(caller)
    return _as_appointment(_visible(uow, caller, appointment_id))


def get_audit(uow: Work, caller: Caller, appointment_id: UUID) -> AuditTrail:
    uow.accounts.check_reader(caller)
    _visible(uow, caller, appointment_id)
    return AuditTrail(items=[AuditEntry(**row) for row in uow.appointments.audit_trail(appointment_id)])


def list_appointments(uow: Work, caller: Caller, query: AppointmentQuery) -> AppointmentList:
    uow.accounts.check_reader(caller)
    patient_id, doctor_id = _listed_for(caller, query.patient_id)
    after = paging.decode(query.page_token, {"start": paging.timestamp, "id": paging.uuid})
    rows = uow.appointments.page(
        patient_id=patient_id,
        doctor_id=doctor_id,
        status=query.status,
        range_start=range_bound(query.from_),
        range_end=range_bound(query.to, end=True),
        after=(after["start"], after["id"]) if after else None,
        limit=query.page_size + 1,
    )
    items = [_as_appointment(row) for row in rows[: query.page_size]]
    token = None
    if len(rows) > query.page_size:
        token = paging.encode({"start": items[-1].start_time.isoformat(), "id": items[-1].id})
    return AppointmentList(items=items, next_page_token=token)


def _listed_for(caller: Caller, patient_id: UUID | None) -> tuple[UUID | None, UUID | None]:
    """(patient, doctor) whose appointments a list may show: anyone's to those who may see
    anyone's; else the caller's own, as the patient who holds them or as their doctor."""
    authorise(caller, Action.SEE_APPOINTMENT)
    if covers_anyone(caller, Action.SEE_APPOINTMENT):
        return patient_id, None
    if allows(caller, Action.HOLD_APPOINTMENTS):
        if patient_id not in (None, caller.id):
            raise Forbidden("a patient reads only their own appointments")
        return caller.id, None
    return patient_id, caller.id


def _visible(uow: Work, caller: Caller, appointment_id: UUID, lock: bool = False) -> Row:
    row = uow.appointments.get(appointment_id, lock=lock)
    if row is None or not allows(caller, Action.SEE_APPOINTMENT, owners=_owners(row)):
        # Another patient's appointment is indistinguishable from a missing one.
        raise NotFound("no such appointment")
    return row


def _owners(row: Row) -> list[UUID]:
    return [row["patient_id"], row["doctor_id"]]


def _as_appointment(row: Row) -> Appointment:
    return Appointment(**{k: row[k] for k in _APPOINTMENT_FIELDS})


def _instant(value: datetime) -> str:
    """An instant in UTC written as the API writes every other one: 2027-03-01T09:00:00Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
