"""Doctors, their availability and free slots: the use cases of the slots function."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from shared import paging, waitlist
from shared.auth import Caller
from shared.errors import BadRequest, Conflict, NotFound, Unprocessable
from shared.models import (
    AvailabilityWindow,
    Doctor,
    DoctorCreate,
    DoctorList,
    DoctorQuery,
    PublishedSlots,
    Slot,
    SlotList,
    SlotQuery,
)
from shared.policy import Action, authorise
from shared.repositories import Accounts, Doctors
from shared.timeslots import cut_between, window_bounds
from shared.waitlist import HoldWork

# How far ahead a doctor may publish availability.
MAX_PUBLISH_AHEAD = timedelta(days=366)


class Work(Protocol):
    """What these use cases need of a unit of work."""

    accounts: Accounts
    doctors: Doctors


def list_doctors(uow: Work, query: DoctorQuery) -> DoctorList:
    after = paging.decode(query.page_token, {"name": str, "id": paging.uuid})
    rows = uow.doctors.page(query.specialty, (after["name"], after["id"]) if after else None, query.page_size + 1)
    items = [Doctor(**row) for row in rows[: query.page_size]]
    token = None
    if len(rows) > query.page_size:
        token = paging.encode({"name": items[-1].name, "id": items[-1].id})
    return DoctorList(items=items, next_page_token=token)


def get_doctor(uow: Work, doctor_id: UUID) -> Doctor:
    row = uow.doctors.get(doctor_id)
    if row is None:
        raise NotFound("no such doctor")
    return Doctor(**row)


def create_doctor(uow: Work, caller: Caller, command: DoctorCreate) -> Doctor:
    """Creates the doctor's user and profile."""
    authorise(caller, Action.CREATE_DOCTOR)
    uow.accounts.ensure(caller)
    doctor_id = command.id or uuid4()
    if not uow.doctors.create(doctor_id, command.email.lower(), command.name, command.specialty, command.timezone):
        raise Conflict("a user with this id or email already exists")
    return Doctor(id=doctor_id, name=command.name, specialty=command.specialty, timezone=command.timezone)


def publish_slots(uow: Work, caller: Caller, doctor_id: UUID, window: AvailabilityWindow) -> PublishedSlots:
    """Creates the window's slots; those that exist or overlap existing ones are skipped.

    Says how many were skipped, so re-publishing a window is harmless and fills only
    what is missing, and how many minutes at the end were too short for a slot.
    """
    authorise(caller, Action.PUBLISH_AVAILABILITY, owners=[doctor_id])
    doctor = get_doctor(uow, doctor_id)
    uow.accounts.ensure(caller)
    zone = ZoneInfo(doctor.timezone)
    first, last = window_bounds(window.date, window.start, window.end, zone)
    wanted = cut_between(first, last, window.slot_minutes)
    unused = last - wanted[-1][1]
    now = datetime.now(UTC)
    if wanted[-1][1] <= now:
        raise Unprocessable("the window is in the past")
    if wanted[0][0] > now + MAX_PUBLISH_AHEAD:
        raise Unprocessable("availability can be published at most a year ahead")
    # Slots that have started are not published; they count as skipped, as existing ones do.
    future = [(start, end) for start, end in wanted if start > now]
    if not future:
        raise Unprocessable("every slot of the window has already started")
    rows = uow.doctors.add_slots(doctor_id, [start for start, _ in future], [end for _, end in future])
    return PublishedSlots(
        items=[Slot(**row) for row in rows],
        next_page_token=None,
        skipped=len(wanted) - len(rows),
        unused_minutes=int(unused.total_seconds() // 60),
    )


def list_free_slots(uow: Work, doctor_id: UUID, query: SlotQuery) -> SlotList:
    doctor = get_doctor(uow, doctor_id)
    zone = ZoneInfo(doctor.timezone)
    # Dates are the doctor's calendar days: from 00:00 of `from` to the end of `to`.
    range_start = datetime.combine(query.from_, time(0), tzinfo=zone)
    range_end = datetime.combine(query.to + timedelta(days=1), time(0), tzinfo=zone)
    after = paging.decode(query.page_token, {"doctor": paging.uuid, "after": paging.timestamp})
    if after is not None and after["doctor"] != doctor_id:
        raise BadRequest("page_token belongs to another doctor's listing")
    rows = uow.doctors.free_slots(
        doctor_id, range_start, range_end, after["after"] if after else None, query.page_size + 1
    )
    items = [Slot(**row) for row in rows[: query.page_size]]
    token = None
    if len(rows) > query.page_size:
        token = paging.encode({"doctor": str(doctor_id), "after": items[-1].start_time.isoformat()})
    return SlotList(items=items, next_page_token=token)


class HoldingWork(Work, HoldWork, Protocol):
    """Publishing with the waitlist's holds needs those too."""


def publish_slots_and_hold(
    uow: HoldingWork, caller: Caller, doctor_id: UUID, window: AvailabilityWindow
) -> PublishedSlots:
    """Publishes the window, and holds each new slot a waiting entry matches for it, in
    the same unit of work (decision 0013)."""
    published = publish_slots(uow, caller, doctor_id, window)
    for slot in published.items:
        waitlist.offer_freed_slot(uow, slot.id, caller.id, "published")
    return published
