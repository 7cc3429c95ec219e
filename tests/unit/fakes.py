"""In-memory stand-ins for shared/repositories.py, for unit tests of the services.

They keep what the SQL keeps, as plain dicts, and refuse what its statements and
constraints refuse (the booking statement's checks, a taken slot), so the services'
rules run without a database. tests/integration proves the SQL itself.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from shared.auth import Caller
from shared.errors import SlotTaken
from shared.repositories import Booked, Booking, Row, check_stored_role
from shared.settings import get_settings

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

    def ensure_profile(self, user_id: UUID) -> None:
        self.profiles.setdefault(user_id, {"phone": None, "date_of_birth": None})


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
            "held_offer_id": None,
        }
        return slot_id

    def _slot(self, slot_id: UUID) -> Row:
        return {**self.slots[slot_id], "started": self.slots[slot_id]["start_time"] <= self.now}

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
        if slot["held_offer_id"] is not None:
            return refused("slot_held")
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


@dataclass
class FakeWaitlist:
    """Waitlist entries, offers and their trail, over FakeAppointments' slots and
    appointments; `matches` is the matching of shared/sql/waitlist.sql."""

    appointments: FakeAppointments
    zones: dict[UUID, str] = field(default_factory=dict)  # the doctors, with their zones
    entries: dict[UUID, Row] = field(default_factory=dict)
    offers: dict[UUID, Row] = field(default_factory=dict)
    events: list[Row] = field(default_factory=list)
    turns: list[UUID] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_doctor(self, zone: str = "UTC") -> UUID:
        doctor_id = uuid4()
        self.zones[doctor_id] = zone
        return doctor_id

    # -- the rules the SQL states --

    def booked_in_range(self, entry: Row) -> bool:
        """The entry is over: its patient holds an appointment with that doctor in its range."""
        return any(
            a["patient_id"] == entry["patient_id"]
            and a["doctor_id"] == entry["doctor_id"]
            and a["status"] == "BOOKED"
            and entry["range_start"] <= a["start_time"] < entry["range_end"]
            for a in self.appointments.rows.values()
        )

    def slot_free(self, slot: Row, lead_minutes: int) -> bool:
        """Free to hold: unheld, unbooked, at least the lead time ahead."""
        return (
            slot["held_offer_id"] is None
            and slot["start_time"] > self.appointments.now + timedelta(minutes=lead_minutes)
            and not any(a["slot_id"] == slot["id"] and a["status"] == "BOOKED" for a in self.appointments.rows.values())
        )

    def matches(self, entry: Row, slot: Row) -> bool:
        """A WAITING entry that may be offered this slot."""
        local = slot["start_time"].astimezone(ZoneInfo(self.zones[slot["doctor_id"]])).time()
        busy = any(
            a["patient_id"] == entry["patient_id"]
            and a["status"] == "BOOKED"
            and a["start_time"] < slot["end_time"]
            and slot["start_time"] < a["end_time"]
            for a in self.appointments.rows.values()
        )
        return (
            entry["status"] == "WAITING"
            and entry["doctor_id"] == slot["doctor_id"]
            and entry["range_start"] <= slot["start_time"] < entry["range_end"]
            and (entry["day_start"] is None or entry["day_start"] <= local < entry["day_end"])
            and not any(o["entry_id"] == entry["id"] and o["slot_id"] == slot["id"] for o in self.offers.values())
            and not busy
            and not self.booked_in_range(entry)
        )

    def in_order(self) -> list[Row]:
        return sorted(self.entries.values(), key=lambda e: (e["created_at"], e["id"]))

    # -- the Protocol --

    def doctor_zone(self, doctor_id: UUID) -> str | None:
        return self.zones.get(doctor_id)

    def take_turn(self, patient_id: UUID) -> None:
        self.turns.append(patient_id)

    def booked_between(self, patient_id: UUID, doctor_id: UUID, start: datetime, end: datetime) -> datetime | None:
        starts = [
            a["start_time"]
            for a in self.appointments.rows.values()
            if a["patient_id"] == patient_id
            and a["doctor_id"] == doctor_id
            and a["status"] == "BOOKED"
            and start <= a["start_time"] < end
        ]
        return min(starts, default=None)

    def count_active(self, patient_id: UUID) -> int:
        now = self.appointments.now
        return sum(
            1
            for e in self.entries.values()
            if e["patient_id"] == patient_id
            and e["status"] in ("WAITING", "OFFERED")
            and e["range_end"] > now
            and not self.booked_in_range(e)
        )

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
        entry_id = uuid4()
        self.entries[entry_id] = {
            "id": entry_id,
            "patient_id": patient_id,
            "doctor_id": doctor_id,
            "range_start": range_start,
            "range_end": range_end,
            "day_start": day_start,
            "day_end": day_end,
            "status": "WAITING",
            # Joined one after another, as the clock of real transactions would have it.
            "created_at": self.appointments.now + timedelta(microseconds=len(self.entries)),
        }
        event_id, occurred_at = self.record_event(entry_id, None, None, "JOINED", actor_id, {})
        return {**self.entries[entry_id], "event_id": event_id, "occurred_at": occurred_at}

    def page(
        self,
        patient_id: UUID | None,
        doctor_id: UUID | None,
        active: bool,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[Row]:
        now, rows = self.appointments.now, []
        for e in self.in_order():
            if patient_id is not None and e["patient_id"] != patient_id:
                continue
            if doctor_id is not None and e["doctor_id"] != doctor_id:
                continue
            if active and not (e["status"] in ("WAITING", "OFFERED") and e["range_end"] > now):
                continue
            if after is not None and (e["created_at"], e["id"]) <= after:
                continue
            offer = next(
                (o for o in self.offers.values() if o["entry_id"] == e["id"] and o["status"] == "OFFERED"), None
            )
            slot = self.appointments.slots[offer["slot_id"]] if offer else {}
            rows.append(
                {
                    **e,
                    "past": e["range_end"] <= now,
                    "booked_in_range": self.booked_in_range(e),
                    "offer_id": offer and offer["id"],
                    "offer_slot_id": offer and offer["slot_id"],
                    "offer_expires_at": offer and offer["expires_at"],
                    "offer_start_time": slot.get("start_time"),
                    "offer_end_time": slot.get("end_time"),
                }
            )
        return rows[:limit]

    def get_entry(self, entry_id: UUID, lock: bool = False) -> Row | None:
        entry = self.entries.get(entry_id)
        return None if entry is None else {**entry, "past": entry["range_end"] <= self.appointments.now}

    def set_entry_status(self, entry_id: UUID, status: str) -> Row:
        self.entries[entry_id]["status"] = status
        return dict(self.entries[entry_id])

    def record_event(
        self,
        entry_id: UUID,
        offer_id: UUID | None,
        slot_id: UUID | None,
        action: str,
        actor_id: UUID | None,
        details: dict[str, Any],
    ) -> tuple[int, datetime]:
        event = {
            "id": next(self._ids),
            "entry_id": entry_id,
            "offer_id": offer_id,
            "slot_id": slot_id,
            "action": action,
            "actor_id": actor_id,
            "details": details,
            "occurred_at": self.appointments.now,
        }
        self.events.append(event)
        return event["id"], event["occurred_at"]

    def open_offer(self, entry_id: UUID) -> Row | None:
        offer = next((o for o in self.offers.values() if o["entry_id"] == entry_id and o["status"] == "OFFERED"), None)
        return None if offer is None else self.lock_offer(offer["id"])

    def accepted_appointment(self, entry_id: UUID, offer_id: UUID | None = None) -> UUID | None:
        accepted = [
            o
            for o in self.offers.values()
            if o["entry_id"] == entry_id and o["status"] == "ACCEPTED" and offer_id in (None, o["id"])
        ]
        return accepted[-1]["appointment_id"] if accepted else None

    def lock_offer(self, offer_id: UUID) -> Row | None:
        offer = self.offers.get(offer_id)
        if offer is None:
            return None
        entry, slot = self.entries[offer["entry_id"]], self.appointments.slots[offer["slot_id"]]
        return {
            **offer,
            "expired": offer["expires_at"] <= self.appointments.now,
            "patient_id": entry["patient_id"],
            "doctor_id": entry["doctor_id"],
            "start_time": slot["start_time"],
            "end_time": slot["end_time"],
        }

    def release_hold(self, slot_id: UUID, offer_id: UUID) -> None:
        slot = self.appointments.slots[slot_id]
        if slot["held_offer_id"] == offer_id:
            slot["held_offer_id"] = None

    def end_offer(self, offer_id: UUID, status: str, appointment_id: UUID | None) -> Row:
        offer = self.offers[offer_id]
        assert offer["status"] == "OFFERED", "end_offer updates only an open offer"
        offer.update(status=status, ended_at=self.appointments.now, appointment_id=appointment_id)
        return dict(offer)

    def lock_free_slot_for(self, entry_id: UUID, lead_minutes: int) -> UUID | None:
        # As the SQL: the patient's own overlapping appointments are left to the hold.
        entry = self.entries[entry_id]
        slots = sorted(self.appointments.slots.values(), key=lambda s: s["start_time"])
        for slot in slots:
            if self.slot_free(slot, lead_minutes) and self.matches(entry, slot):
                return UUID(str(slot["id"]))
        return None

    def is_offered(self, entry_id: UUID) -> bool:
        return self.entries[entry_id]["status"] == "OFFERED"

    def expired_offers(self, limit: int) -> list[UUID]:
        due = [o for o in self.offers.values() if o["status"] == "OFFERED" and o["expires_at"] <= self.appointments.now]
        return [o["id"] for o in sorted(due, key=lambda o: o["expires_at"])][:limit]

    def passed_over_entries(self, lead_minutes: int, limit: int) -> list[UUID]:
        free = [s for s in self.appointments.slots.values() if self.slot_free(s, lead_minutes)]
        return [e["id"] for e in self.in_order() if any(self.matches(e, s) for s in free)][:limit]

    def lock_offer_message(self, offer_id: UUID) -> Row | None:
        raise NotImplementedError  # the email is tested against the SQL (tests/integration)

    def mark_emailed(self, offer_id: UUID) -> None:
        raise NotImplementedError

    def overdue_holds(self) -> Row:
        raise NotImplementedError


@dataclass
class FakeHolds:
    """The hold (decision 0013): a freed slot goes to the earliest-joined matching entry."""

    appointments: FakeAppointments
    waitlist: FakeWaitlist
    locked: list[UUID] = field(default_factory=list)

    def lock_slot(self, slot_id: UUID) -> None:
        self.locked.append(slot_id)

    def hold_for_next_entry(self, slot_id: UUID, actor_id: UUID | None, freed_by: str) -> Row | None:
        settings, now = get_settings(), self.appointments.now
        slot = self.appointments.slots[slot_id]
        if not self.waitlist.slot_free(slot, settings.waitlist_lead_minutes):
            return None
        entry = next((e for e in self.waitlist.in_order() if self.waitlist.matches(e, slot)), None)
        if entry is None:
            return None
        offer = {
            "id": uuid4(),
            "entry_id": entry["id"],
            "slot_id": slot_id,
            "status": "OFFERED",
            "offered_at": now,
            "expires_at": now + timedelta(minutes=settings.hold_minutes),
            "ended_at": None,
            "appointment_id": None,
        }
        self.waitlist.offers[offer["id"]] = offer
        slot["held_offer_id"] = offer["id"]
        entry["status"] = "OFFERED"
        details = {"expires_at": offer["expires_at"].isoformat(), "freed_by": freed_by}
        event_id, occurred_at = self.waitlist.record_event(
            entry["id"], offer["id"], slot_id, "OFFERED", actor_id, details
        )
        return {
            **offer,
            "patient_id": entry["patient_id"],
            "doctor_id": slot["doctor_id"],
            "start_time": slot["start_time"],
            "end_time": slot["end_time"],
            "event_id": event_id,
            "occurred_at": occurred_at,
        }


class FakeUnitOfWork:
    """What the services see of a unit of work, in memory; commits are counted."""

    def __init__(self) -> None:
        self.patients = FakePatients()
        self.accounts = FakeAccounts(self.patients.users)
        self.appointments = FakeAppointments(self.accounts)
        self.waitlist = FakeWaitlist(self.appointments)
        self.holds = FakeHolds(self.appointments, self.waitlist)
        self.idempotency_keys = FakeIdempotencyKeys()
        self.outbox: list[dict[str, Any]] = []

    def add_outbox_rows(self, rows: list[dict[str, Any]]) -> None:
        self.outbox.extend(rows)
