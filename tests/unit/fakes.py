"""In-memory stand-ins for shared/repositories.py, for unit tests of the services.

They keep what the SQL keeps, as plain dicts, and refuse what its statements and
constraints refuse (the booking statement's checks, a taken slot), so the services'
rules run without a database. tests/integration proves the SQL itself.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from shared.auth import Caller
from shared.errors import SlotTaken
from shared.repositories import Booked, Booking, Row, check_stored_role

NOW = datetime(2030, 6, 3, 12, 0, tzinfo=UTC)  # fakes' clock; slots are placed around it


@dataclass
class FakeAccounts:
    users: dict[UUID, Row] = field(default_factory=dict)  # shared with FakePatients

    @property
    def roles(self) -> dict[UUID, str]:
        return {user_id: row["role"] for user_id, row in self.users.items()}

    def set_role(self, user_id: UUID, role: str) -> None:
        self.users[user_id]["role"] = role

    def ensure(self, caller: Caller) -> None:
        self.users.setdefault(
            caller.id, {"id": caller.id, "email": caller.email, "name": caller.name, "role": caller.role}
        )
        check_stored_role(caller, self.users[caller.id])

    def check_reader(self, caller: Caller) -> None:
        if caller.id in self.users:
            check_stored_role(caller, self.users[caller.id])


@dataclass
class FakeHolds:
    """No one waits: every freed slot stays free (the waitlist's SQL is tested in integration)."""

    locked: list[UUID] = field(default_factory=list)

    def lock_slot(self, slot_id: UUID) -> None:
        self.locked.append(slot_id)

    def hold_for_next_entry(self, slot_id: UUID, actor_id: UUID | None, freed_by: str) -> Row | None:
        return None


@dataclass
class FakePatients:
    users: dict[UUID, Row] = field(default_factory=dict)
    profiles: dict[UUID, Row] = field(default_factory=dict)

    def get(self, user_id: UUID) -> Row | None:
        if user_id not in self.profiles:
            return None
        return {**self.users[user_id], **self.profiles[user_id]}

    def get_user(self, user_id: UUID) -> Row | None:
        return self.users.get(user_id)

    def create_user(self, user_id: UUID, email: str, name: str, role: str) -> bool:
        if user_id in self.users or any(u["email"] == email for u in self.users.values()):
            return False
        self.users[user_id] = {"id": user_id, "email": email, "name": name, "role": role}
        return True

    def save_profile(self, user_id: UUID, phone: str | None, date_of_birth: Any, given: set[str]) -> bool:
        created = user_id not in self.profiles
        profile = self.profiles.setdefault(user_id, {"phone": None, "date_of_birth": None})
        if "phone" in given:
            profile["phone"] = phone
        if "date_of_birth" in given:
            profile["date_of_birth"] = date_of_birth
        return created

    def find(self, pattern: str | None, after: tuple[str, UUID] | None, limit: int) -> list[Row]:
        raise NotImplementedError

    def booked_with(self, doctor_id: UUID, patient_id: UUID) -> bool:
        raise NotImplementedError


@dataclass
class FakeIdempotencyKeys:
    rows: dict[tuple[UUID, str], Row] = field(default_factory=dict)

    def claim(self, caller_id: UUID, key: str, request: str, ttl: timedelta) -> bool:
        if (caller_id, key) in self.rows:
            return False
        self.rows[caller_id, key] = {"request_hash": request, "status_code": None, "response": None}
        return True

    def stored(self, caller_id: UUID, key: str) -> Row:
        return self.rows[caller_id, key]

    def store(self, caller_id: UUID, key: str, status: int, body: str) -> None:
        self.rows[caller_id, key].update(status_code=status, response=body)


@dataclass
class FakeAppointments:
    """Slots and appointments of one clinic; `now` says which slots have started."""

    accounts: FakeAccounts
    slots: dict[UUID, Row] = field(default_factory=dict)
    rows: dict[UUID, Row] = field(default_factory=dict)
    audit: list[Row] = field(default_factory=list)
    dropped_tasks: list[UUID] = field(default_factory=list)
    now: datetime = NOW
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_slot(self, doctor_id: UUID, hours_from_now: float) -> UUID:
        start = self.now + timedelta(hours=hours_from_now)
        slot_id = uuid4()
        self.slots[slot_id] = {
            "id": slot_id,
            "doctor_id": doctor_id,
            "start_time": start,
            "end_time": start + timedelta(minutes=30),
        }
        return slot_id

    def _slot(self, slot_id: UUID) -> Row:
        return {**self.slots[slot_id], "started": self.slots[slot_id]["start_time"] <= self.now, "held_offer_id": None}

    def _counts(self, patient_id: UUID, actor: UUID | None) -> tuple[int, int]:
        upcoming = sum(
            1
            for a in self.rows.values()
            if a["patient_id"] == patient_id and a["status"] == "BOOKED" and a["start_time"] > self.now
        )
        recent = sum(1 for e in self.audit if actor is not None and e["actor_id"] == actor)
        return upcoming, recent

    def book(self, booking: Booking) -> Booked:
        caller = booking.caller
        self.accounts.users.setdefault(
            caller.id, {"id": caller.id, "email": caller.email, "name": caller.name, "role": caller.role}
        )
        upcoming, recent = self._counts(booking.patient_id, None if booking.max_changes is None else caller.id)
        slot = self._slot(booking.slot_id) if booking.slot_id in self.slots else None

        def refused(refusal: str) -> Booked:
            role = self.accounts.users[caller.id]["role"] if refusal == "account_role" else None
            return Booked(None, None, None, refusal, role, upcoming, recent)  # type: ignore[arg-type]

        if self.accounts.users[caller.id]["role"] != caller.role:
            return refused("account_role")
        if booking.max_changes is not None and recent >= booking.max_changes:
            return refused("too_many_changes")
        if slot is None:
            return refused("no_slot")
        if slot["started"]:
            return refused("slot_started")
        if booking.max_upcoming is not None and upcoming >= booking.max_upcoming:
            return refused("too_many_upcoming")
        self._refuse_taken(slot["id"])
        row = self._new(booking.patient_id, slot, booking.reason)
        audit_id, occurred_at = self.record_audit(row, "BOOKED", None, caller, booking.reason, {})
        return Booked(row, audit_id, occurred_at, None, None, upcoming, recent)

    def _refuse_taken(self, slot_id: UUID) -> None:
        if any(a["slot_id"] == slot_id and a["status"] == "BOOKED" for a in self.rows.values()):
            raise SlotTaken("this slot is already booked")

    def _new(self, patient_id: UUID, slot: Row, reason: str | None) -> Row:
        row = {
            "id": uuid4(),
            "slot_id": slot["id"],
            "doctor_id": slot["doctor_id"],
            "patient_id": patient_id,
            "start_time": slot["start_time"],
            "end_time": slot["end_time"],
            "status": "BOOKED",
            "reason": reason,
            "created_at": self.now,
            "updated_at": self.now,
        }
        self.rows[row["id"]] = row
        return dict(row)

    def get(self, appointment_id: UUID, lock: bool = False) -> Row | None:
        row = self.rows.get(appointment_id)
        return None if row is None else {**row, "started": row["start_time"] <= self.now}

    def take_patients_turn(self, appointment_id: UUID, limited_actor: UUID | None) -> int | None:
        row = self.rows.get(appointment_id)
        return None if row is None else self._counts(row["patient_id"], limited_actor)[1]

    def seconds_until_changes_fall_below(self, actor: UUID, skip: int) -> int:
        return 1800

    def lock_slots(self, slot_ids: list[UUID]) -> dict[UUID, Row]:
        return {i: self._slot(i) for i in slot_ids if i in self.slots}

    def set_status(self, appointment_id: UUID, status: str) -> Row:
        self.rows[appointment_id].update(status=status, updated_at=self.now)
        return dict(self.rows[appointment_id])

    def move(self, appointment_id: UUID, slot: Row) -> Row:
        self._refuse_taken(slot["id"])
        self.rows[appointment_id].update(
            slot_id=slot["id"], doctor_id=slot["doctor_id"], start_time=slot["start_time"], end_time=slot["end_time"]
        )
        return dict(self.rows[appointment_id])

    def record_audit(
        self, row: Row, action: str, from_status: str | None, actor: Caller, reason: str | None, details: dict[str, Any]
    ) -> tuple[int, datetime]:
        entry = {"id": next(self._ids), "appointment_id": row["id"], "action": action, "actor_id": actor.id}
        self.audit.append(entry)
        return entry["id"], self.now

    def drop_pending_tasks(self, appointment_id: UUID) -> None:
        self.dropped_tasks.append(appointment_id)

    def page(self, *args: Any, **kwargs: Any) -> list[Row]:
        raise NotImplementedError

    def audit_trail(self, appointment_id: UUID) -> list[Row]:
        raise NotImplementedError


class FakeUnitOfWork:
    """What the services see of a unit of work, in memory; commits are counted."""

    def __init__(self) -> None:
        self.patients = FakePatients()
        self.accounts = FakeAccounts(self.patients.users)
        self.appointments = FakeAppointments(self.accounts)
        self.holds = FakeHolds()
        self.idempotency_keys = FakeIdempotencyKeys()
        self.outbox: list[dict[str, Any]] = []

    def add_outbox_rows(self, rows: list[dict[str, Any]]) -> None:
        self.outbox.extend(rows)
