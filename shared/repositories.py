"""The storage the services reach, as narrow Protocols, and their SQL implementations.

Services see only these methods (through their unit of work: uow.appointments, ...):
unit tests give them in-memory fakes (tests/unit/fakes.py), and tests/integration
proves the SQL and the constraints on PostgreSQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol
from uuid import UUID

from shared.auth import Caller
from shared.db.errors import IntegrityViolation
from shared.db.sqlfiles import queries
from shared.errors import Conflict, Forbidden, PatientBusy, SlotTaken
from shared.settings import get_settings

if TYPE_CHECKING:
    from shared.unit_of_work import Transaction

Row = dict[str, Any]
APPOINTMENTS = queries("appointments")
USERS = queries("users")
DOCTORS = queries("doctors")
IDEMPOTENCY = queries("idempotency")
WAITLIST = queries("waitlist")
OUTBOX = queries("outbox")

# What book_appointment reports when it booked nothing, in the order it checks.
Refusal = Literal[
    "account_role", "no_account", "too_many_changes", "no_slot", "slot_started", "slot_held", "too_many_upcoming"
]


@dataclass(frozen=True)
class Booking:
    caller: Caller
    patient_id: UUID
    slot_id: UUID
    reason: str | None
    max_upcoming: int | None  # None: not capped
    max_changes: int | None  # None: the caller's changes are not counted


@dataclass(frozen=True)
class Booked:
    """The booking statement's one row: the appointment, or which check refused it."""

    appointment: Row | None
    audit_id: int | None
    audit_occurred_at: datetime | None
    refusal: Refusal | None
    account_role: str | None
    upcoming: int
    recent_changes: int


class Accounts(Protocol):
    """The callers' own users rows (users come from the identity provider)."""

    def ensure(self, caller: Caller) -> None:
        """The caller's users row, made on first use; Conflict or Forbidden if it is another's."""

    def check_reader(self, caller: Caller) -> None:
        """A reader's account, if it exists, has the token's role (reads create no user, or an
        admin claim on a patient's account would read every appointment)."""


class Holds(Protocol):
    """A freed slot held for the waitlist (decision 0013)."""

    def lock_slot(self, slot_id: UUID) -> None:
        """The first step of every change that may free the slot."""

    def hold_for_next_entry(self, slot_id: UUID, actor_id: UUID | None, freed_by: str) -> Row | None:
        """The offer to the earliest matching waiting entry, or None if none matches."""


class Waitlist(Protocol):
    """Waitlist entries, their offers (the holds) and their trail (decision 0013). The
    hold itself, which matches a freed slot to an entry, is Holds'."""

    def doctor_zone(self, doctor_id: UUID) -> str | None:
        """The doctor's IANA zone; None: no such doctor."""

    def take_turn(self, patient_id: UUID) -> None:
        """One join of a patient at a time, so two at once cannot both pass the cap."""

    def booked_between(self, patient_id: UUID, doctor_id: UUID, start: datetime, end: datetime) -> datetime | None:
        """The start of the patient's earliest BOOKED appointment with the doctor starting
        in [start, end), if any (an entry over that range would be over at once)."""

    def count_active(self, patient_id: UUID) -> int:
        """The patient's entries still waiting or offered, in range, and not over because
        the patient booked that doctor in the entry's range."""

    def add_entry(
        self,
        patient_id: UUID,
        doctor_id: UUID,
        range_start: datetime,
        range_end: datetime,
        day_start: time | None,
        day_end: time | None,
        actor_id: UUID,
    ) -> Row:
        """The new WAITING entry, with its JOINED event's event_id and occurred_at."""

    def page(
        self,
        patient_id: UUID | None,
        doctor_id: UUID | None,
        active: bool,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[Row]:
        """Entries oldest first, each with its open offer (offer_*), `past` and `booked_in_range`."""

    def get_entry(self, entry_id: UUID, lock: bool = False) -> Row | None: ...

    def set_entry_status(self, entry_id: UUID, status: str) -> Row: ...

    def record_event(
        self,
        entry_id: UUID,
        offer_id: UUID | None,
        slot_id: UUID | None,
        action: str,
        actor_id: UUID | None,
        details: dict[str, Any],
    ) -> tuple[int, datetime]:
        """An append-only waitlist_events row: its id and occurred_at."""

    def open_offer(self, entry_id: UUID) -> Row | None:
        """The entry's OFFERED offer, locked, as lock_offer returns it."""

    def accepted_appointment(self, entry_id: UUID, offer_id: UUID | None = None) -> UUID | None:
        """The appointment the entry's accepted offer (that offer, given one) made, if any."""

    def lock_offer(self, offer_id: UUID) -> Row | None:
        """The offer with `expired`, its entry's patient and doctor, its slot's times; locked
        before the slot (accept, decline and expiry are serialised on it)."""

    def release_hold(self, slot_id: UUID, offer_id: UUID) -> None:
        """Clears the slot's hold if it is still this offer's (the slot is locked)."""

    def end_offer(self, offer_id: UUID, status: str, appointment_id: UUID | None) -> Row: ...

    def lock_free_slot_for(self, entry_id: UUID, lead_minutes: int) -> UUID | None:
        """The earliest free, unheld slot a WAITING entry matches and was never offered,
        locked as a freeing change locks it (skipping one a booking holds)."""

    def is_offered(self, entry_id: UUID) -> bool: ...

    def expired_offers(self, limit: int) -> list[UUID]:
        """Open offers past their time, oldest first."""

    def passed_over_entries(self, lead_minutes: int, limit: int) -> list[UUID]:
        """WAITING entries that match a free, unheld slot they were never offered."""

    def lock_offer_message(self, offer_id: UUID) -> Row | None:
        """What the offer email says (patient, doctor, times), the offer locked."""

    def mark_emailed(self, offer_id: UUID) -> None: ...

    def overdue_holds(self) -> Row:
        """Open offers past their time: `overdue` (a count) and `oldest_overdue_s`."""


class IdempotencyKeys(Protocol):
    def claim(self, caller_id: UUID, key: str, request: str, ttl: timedelta) -> bool:
        """True: the key is ours now (new, or older than `ttl`). A concurrent request with
        the same key waits here until the first commits or rolls back."""

    def stored(self, caller_id: UUID, key: str) -> Row:
        """The claimed key's row: request_hash, status_code, response."""

    def store(self, caller_id: UUID, key: str, status: int, body: str) -> None: ...


class Patients(Protocol):
    def get(self, user_id: UUID) -> Row | None: ...

    def get_user(self, user_id: UUID) -> Row | None: ...

    def create_user(self, user_id: UUID, email: str, name: str, role: str) -> bool:
        """False: the id or the email is taken."""

    def save_profile(self, user_id: UUID, phone: str | None, date_of_birth: Any, given: set[str]) -> bool:
        """Creates or updates the profile (fields not `given` keep their values); True if created."""

    def find(self, pattern: str | None, after: tuple[str, UUID] | None, limit: int) -> list[Row]: ...

    def booked_with(self, doctor_id: UUID, patient_id: UUID) -> bool:
        """Whether the patient has an appointment with the doctor."""

    def ensure_profile(self, user_id: UUID) -> None:
        """An empty profile for a user who never filled one in; an existing one untouched."""


class Doctors(Protocol):
    def page(self, specialty: str | None, after: tuple[str, UUID] | None, limit: int) -> list[Row]: ...

    def get(self, doctor_id: UUID) -> Row | None: ...

    def create(self, doctor_id: UUID, email: str, name: str, specialty: str, timezone: str) -> bool:
        """False: the id or the email is taken."""

    def add_slots(self, doctor_id: UUID, starts: list[datetime], ends: list[datetime]) -> list[Row]:
        """The slots made; those that exist or overlap existing ones are skipped."""

    def free_slots(
        self, doctor_id: UUID, range_start: datetime, range_end: datetime, after: datetime | None, limit: int
    ) -> list[Row]: ...


class Appointments(Protocol):
    def book(self, booking: Booking) -> Booked: ...

    def get(self, appointment_id: UUID, lock: bool = False) -> Row | None: ...

    def take_patients_turn(self, appointment_id: UUID, limited_actor: UUID | None) -> int | None:
        """Waits for the patient's turn (one booking or move of a patient at a time); the
        changes `limited_actor` made in the last hour, or None if there is no such appointment."""

    def seconds_until_changes_fall_below(self, actor: UUID, skip: int) -> int: ...

    def lock_slots(self, slot_ids: list[UUID]) -> dict[UUID, Row]: ...

    def set_status(self, appointment_id: UUID, status: str) -> Row: ...

    def move(self, appointment_id: UUID, slot: Row) -> Row:
        """Puts the appointment on `slot`; SlotTaken or PatientBusy if a constraint refuses."""

    def record_audit(
        self, row: Row, action: str, from_status: str | None, actor: Caller, reason: str | None, details: dict[str, Any]
    ) -> tuple[int, datetime]: ...

    def drop_pending_tasks(self, appointment_id: UUID) -> None: ...

    def page(
        self,
        patient_id: UUID | None,
        doctor_id: UUID | None,
        status: str | None,
        range_start: datetime | None,
        range_end: datetime | None,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[Row]: ...

    def audit_trail(self, appointment_id: UUID) -> list[Row]: ...


# -- SQL ---------------------------------------------------------------------------------


class SqlAccounts:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def ensure(self, caller: Caller) -> None:
        created = self._tx.first(
            USERS.upsert_user, id=caller.id, email=caller.email, name=caller.name, role=caller.role
        )
        if created is None:
            check_stored_role(caller, self._tx.first(USERS.select_user, id=caller.id))

    def check_reader(self, caller: Caller) -> None:
        stored = self._tx.first(USERS.select_user, id=caller.id)
        if stored is not None:
            check_stored_role(caller, stored)


def check_stored_role(caller: Caller, stored: Row | None) -> None:
    """The users row, not the token, says what an account is: a token that claims another
    role (or none, which reads as patient) acts as nobody."""
    if stored is None:
        raise Conflict("this email belongs to another account")
    if stored["role"] != caller.role:
        raise account_of_another_role(stored["role"], caller)


def account_of_another_role(stored_role: str, caller: Caller) -> Forbidden:
    article = "an" if stored_role[:1] in "aeiou" else "a"
    return Forbidden(f"this account is {article} {stored_role} account; the token says {caller.role}")


class SqlHolds:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def lock_slot(self, slot_id: UUID) -> None:
        self._tx.first(WAITLIST.lock_slot_for_change, id=slot_id)

    def hold_for_next_entry(self, slot_id: UUID, actor_id: UUID | None, freed_by: str) -> Row | None:
        settings = get_settings()
        return self._tx.first(
            WAITLIST.hold_slot_for_next_entry,
            slot_id=slot_id,
            lead_minutes=settings.waitlist_lead_minutes,
            hold_seconds=settings.hold_minutes * 60,
            actor_id=actor_id,
            freed_by=freed_by,
        )


class SqlWaitlist:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def doctor_zone(self, doctor_id: UUID) -> str | None:
        row = self._tx.first(WAITLIST.select_doctor_zone, doctor_id=doctor_id)
        return None if row is None else str(row["timezone"])

    def take_turn(self, patient_id: UUID) -> None:
        self._tx.execute(WAITLIST.take_waitlist_turn, patient_id=patient_id)

    def booked_between(self, patient_id: UUID, doctor_id: UUID, start: datetime, end: datetime) -> datetime | None:
        row = self._tx.first(
            WAITLIST.select_booked_in_range,
            patient_id=patient_id,
            doctor_id=doctor_id,
            range_start=start,
            range_end=end,
        )
        return None if row is None else row["start_time"]

    def count_active(self, patient_id: UUID) -> int:
        return int(self._tx.one(WAITLIST.count_active_entries, patient_id=patient_id)["active"])

    def add_entry(
        self,
        patient_id: UUID,
        doctor_id: UUID,
        range_start: datetime,
        range_end: datetime,
        day_start: time | None,
        day_end: time | None,
        actor_id: UUID,
    ) -> Row:
        return self._tx.one(
            WAITLIST.insert_entry,
            patient_id=patient_id,
            doctor_id=doctor_id,
            range_start=range_start,
            range_end=range_end,
            day_start=None if day_start is None else day_start.isoformat(),
            day_end=None if day_end is None else day_end.isoformat(),
            actor_id=actor_id,
        )

    def page(
        self,
        patient_id: UUID | None,
        doctor_id: UUID | None,
        active: bool,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[Row]:
        return self._tx.all(
            WAITLIST.list_entries,
            patient_id=patient_id,
            doctor_id=doctor_id,
            active=active,
            after_created=after[0] if after else None,
            after_id=after[1] if after else None,
            limit=limit,
        )

    def get_entry(self, entry_id: UUID, lock: bool = False) -> Row | None:
        return self._tx.first(WAITLIST.lock_entry if lock else WAITLIST.select_entry, id=entry_id)

    def set_entry_status(self, entry_id: UUID, status: str) -> Row:
        return self._tx.one(WAITLIST.update_entry_status, id=entry_id, status=status)

    def record_event(
        self,
        entry_id: UUID,
        offer_id: UUID | None,
        slot_id: UUID | None,
        action: str,
        actor_id: UUID | None,
        details: dict[str, Any],
    ) -> tuple[int, datetime]:
        event = self._tx.one(
            WAITLIST.insert_event,
            entry_id=entry_id,
            offer_id=offer_id,
            slot_id=slot_id,
            action=action,
            actor_id=actor_id,
            details=json.dumps(details),
        )
        return int(event["id"]), event["occurred_at"]

    def open_offer(self, entry_id: UUID) -> Row | None:
        row = self._tx.first(WAITLIST.select_open_offer, entry_id=entry_id)
        return None if row is None else self.lock_offer(row["id"])

    def accepted_appointment(self, entry_id: UUID, offer_id: UUID | None = None) -> UUID | None:
        row = self._tx.first(WAITLIST.select_accepted_appointment, entry_id=entry_id, offer_id=offer_id)
        return None if row is None else row["appointment_id"]

    def lock_offer(self, offer_id: UUID) -> Row | None:
        return self._tx.first(WAITLIST.lock_offer, id=offer_id)

    def release_hold(self, slot_id: UUID, offer_id: UUID) -> None:
        self._tx.execute(WAITLIST.release_hold, slot_id=slot_id, offer_id=offer_id)

    def end_offer(self, offer_id: UUID, status: str, appointment_id: UUID | None) -> Row:
        return self._tx.one(WAITLIST.end_offer, id=offer_id, status=status, appointment_id=appointment_id)

    def lock_free_slot_for(self, entry_id: UUID, lead_minutes: int) -> UUID | None:
        row = self._tx.first(WAITLIST.lock_free_slot_for_entry, entry_id=entry_id, lead_minutes=lead_minutes)
        return None if row is None else row["id"]

    def is_offered(self, entry_id: UUID) -> bool:
        return self._tx.first(WAITLIST.select_entry_offered, id=entry_id) is not None

    def expired_offers(self, limit: int) -> list[UUID]:
        return [row["id"] for row in self._tx.all(WAITLIST.list_expired_offers, limit=limit)]

    def passed_over_entries(self, lead_minutes: int, limit: int) -> list[UUID]:
        rows = self._tx.all(WAITLIST.list_passed_over_entries, lead_minutes=lead_minutes, limit=limit)
        return [row["id"] for row in rows]

    def lock_offer_message(self, offer_id: UUID) -> Row | None:
        return self._tx.first(WAITLIST.lock_offer_message, id=offer_id)

    def mark_emailed(self, offer_id: UUID) -> None:
        self._tx.execute(WAITLIST.mark_offer_emailed, id=offer_id)

    def overdue_holds(self) -> Row:
        return self._tx.one(WAITLIST.count_overdue_holds)


class SqlIdempotencyKeys:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def claim(self, caller_id: UUID, key: str, request: str, ttl: timedelta) -> bool:
        claimed = self._tx.first(IDEMPOTENCY.claim_key, caller_id=caller_id, key=key, request_hash=request, ttl=ttl)
        return claimed is not None

    def stored(self, caller_id: UUID, key: str) -> Row:
        return self._tx.one(IDEMPOTENCY.select_key, caller_id=caller_id, key=key)

    def store(self, caller_id: UUID, key: str, status: int, body: str) -> None:
        # jsonb keeps neither key order nor spacing: the body goes in as one JSON string.
        self._tx.execute(
            IDEMPOTENCY.store_answer, caller_id=caller_id, key=key, status_code=status, response=json.dumps(body)
        )


class SqlPatients:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def get(self, user_id: UUID) -> Row | None:
        return self._tx.first(USERS.select_patient, user_id=user_id)

    def get_user(self, user_id: UUID) -> Row | None:
        return self._tx.first(USERS.select_user, id=user_id)

    def create_user(self, user_id: UUID, email: str, name: str, role: str) -> bool:
        return self._tx.first(USERS.insert_user, id=user_id, email=email, name=name, role=role) is not None

    def save_profile(self, user_id: UUID, phone: str | None, date_of_birth: Any, given: set[str]) -> bool:
        profile = self._tx.one(
            USERS.insert_patient_profile,
            user_id=user_id,
            phone=phone,
            date_of_birth=date_of_birth,
            set_phone="phone" in given,
            set_date_of_birth="date_of_birth" in given,
        )
        return bool(profile["created"])

    def find(self, pattern: str | None, after: tuple[str, UUID] | None, limit: int) -> list[Row]:
        return self._tx.all(
            USERS.find_patients,
            pattern=pattern,
            after_name=after[0] if after else None,
            after_id=after[1] if after else None,
            limit=limit,
        )

    def booked_with(self, doctor_id: UUID, patient_id: UUID) -> bool:
        return bool(self._tx.one(USERS.doctor_sees_patient, doctor_id=doctor_id, patient_id=patient_id)["sees"])

    def ensure_profile(self, user_id: UUID) -> None:
        self._tx.execute(USERS.insert_patient_profile_if_missing, user_id=user_id)


class SqlDoctors:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def page(self, specialty: str | None, after: tuple[str, UUID] | None, limit: int) -> list[Row]:
        return self._tx.all(
            DOCTORS.list_doctors,
            specialty=specialty,
            after_name=after[0] if after else None,
            after_id=after[1] if after else None,
            limit=limit,
        )

    def get(self, doctor_id: UUID) -> Row | None:
        return self._tx.first(DOCTORS.select_doctor, id=doctor_id)

    def create(self, doctor_id: UUID, email: str, name: str, specialty: str, timezone: str) -> bool:
        if self._tx.first(USERS.insert_user, id=doctor_id, email=email, name=name, role="doctor") is None:
            return False
        self._tx.execute(DOCTORS.insert_doctor_profile, user_id=doctor_id, specialty=specialty, timezone=timezone)
        return True

    def add_slots(self, doctor_id: UUID, starts: list[datetime], ends: list[datetime]) -> list[Row]:
        return self._tx.all(DOCTORS.insert_slots, doctor_id=doctor_id, starts=starts, ends=ends)

    def free_slots(
        self, doctor_id: UUID, range_start: datetime, range_end: datetime, after: datetime | None, limit: int
    ) -> list[Row]:
        return self._tx.all(
            DOCTORS.list_free_slots,
            doctor_id=doctor_id,
            range_start=range_start,
            range_end=range_end,
            after=after,
            limit=limit,
        )


# book_appointment found no user row for the caller to write under: its email is another account's.
_NO_CALLER_ROW = ("patients_profiles_user_id_fkey", "audit_appointment_actor_id_fkey")


def _conflict(error: IntegrityViolation) -> Exception:
    """The domain error for a constraint a booking or move ran into."""
    if error.constraint == "appointments_one_booked_per_slot":
        return SlotTaken("this slot is already booked")
    if error.constraint == "appointments_patient_no_overlap":
        return PatientBusy("the patient already has an appointment at that time")
    if error.constraint in _NO_CALLER_ROW:
        return Conflict("this email belongs to another account")
    return error


class SqlAppointments:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def book(self, booking: Booking) -> Booked:
        caller = booking.caller
        try:
            row = self._tx.one(
                APPOINTMENTS.book_appointment,
                caller_id=caller.id,
                email=caller.email,
                name=caller.name,
                role=caller.role,
                # A patient who never filled in a profile gets one, empty, on first booking.
                own_profile=booking.patient_id == caller.id,
                patient_id=booking.patient_id,
                slot_id=booking.slot_id,
                reason=booking.reason,
                max_upcoming=booking.max_upcoming,
                limited_actor=None if booking.max_changes is None else caller.id,
                max_changes=booking.max_changes,
            )
        except IntegrityViolation as error:
            raise _conflict(error) from error
        counts = {key: row.pop(key) for key in ("upcoming", "recent_changes", "refusal", "account_role")}
        audit_id, occurred_at = row.pop("audit_id"), row.pop("audit_occurred_at")
        return Booked(
            appointment=row if row["id"] is not None else None,
            audit_id=None if audit_id is None else int(audit_id),
            audit_occurred_at=occurred_at,
            refusal=counts["refusal"],
            account_role=counts["account_role"],
            upcoming=int(counts["upcoming"]),
            recent_changes=int(counts["recent_changes"]),
        )

    def get(self, appointment_id: UUID, lock: bool = False) -> Row | None:
        sql = APPOINTMENTS.lock_appointment if lock else APPOINTMENTS.select_appointment
        return self._tx.first(sql, id=appointment_id)

    def take_patients_turn(self, appointment_id: UUID, limited_actor: UUID | None) -> int | None:
        turn = self._tx.first(APPOINTMENTS.take_patients_turn, id=appointment_id, limited_actor=limited_actor)
        return None if turn is None else int(turn["recent_changes"])

    def seconds_until_changes_fall_below(self, actor: UUID, skip: int) -> int:
        row = self._tx.first(APPOINTMENTS.seconds_until_changes_fall_below, actor=actor, skip=skip)
        return max(1, int(row["wait"]) if row else 1)

    def lock_slots(self, slot_ids: list[UUID]) -> dict[UUID, Row]:
        return {s["id"]: s for s in self._tx.all(APPOINTMENTS.lock_slots, ids=sorted(slot_ids))}

    def set_status(self, appointment_id: UUID, status: str) -> Row:
        return self._tx.one(APPOINTMENTS.update_status, id=appointment_id, status=status)

    def move(self, appointment_id: UUID, slot: Row) -> Row:
        try:
            with self._tx.savepoint():
                return self._tx.one(
                    APPOINTMENTS.update_slot,
                    id=appointment_id,
                    slot_id=slot["id"],
                    doctor_id=slot["doctor_id"],
                    start_time=slot["start_time"],
                    end_time=slot["end_time"],
                )
        except IntegrityViolation as error:
            raise _conflict(error) from error

    def record_audit(
        self, row: Row, action: str, from_status: str | None, actor: Caller, reason: str | None, details: dict[str, Any]
    ) -> tuple[int, datetime]:
        audit = self._tx.one(
            APPOINTMENTS.insert_audit,
            appointment_id=row["id"],
            action=action,
            from_status=from_status,
            to_status=row["status"],
            actor_id=actor.id,
            reason=reason,
            details=json.dumps(details),
        )
        return int(audit["id"]), audit["occurred_at"]

    def drop_pending_tasks(self, appointment_id: UUID) -> None:
        self._tx.execute(OUTBOX.drop_pending_tasks, appointment_id=appointment_id)

    def page(
        self,
        patient_id: UUID | None,
        doctor_id: UUID | None,
        status: str | None,
        range_start: datetime | None,
        range_end: datetime | None,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[Row]:
        return self._tx.all(
            APPOINTMENTS.list_appointments,
            patient_id=patient_id,
            doctor_id=doctor_id,
            status=status,
            range_start=range_start,
            range_end=range_end,
            after_start=after[0] if after else None,
            after_id=after[1] if after else None,
            limit=limit,
        )

    def audit_trail(self, appointment_id: UUID) -> list[Row]:
        return self._tx.all(APPOINTMENTS.list_audit, appointment_id=appointment_id)
