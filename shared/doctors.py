"""Doctors, their availability and free slots."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from shared import paging
from shared.auth import Caller, require_role
from shared.db.sqlfiles import queries
from shared.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
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
from shared.timeslots import cut_between, window_bounds
from shared.unit_of_work import UnitOfWork
from shared.users import ensure_user

SQL = queries("doctors")
USERS = queries("users")
# How far ahead a doctor may publish availability.
MAX_PUBLISH_AHEAD = timedelta(days=366)


def list_doctors(uow: UnitOfWork, query: DoctorQuery) -> DoctorList:
    tx = uow.tx
    after = paging.decode(query.page_token, {"name": str, "id": paging.uuid})
    rows = tx.all(
        SQL.list_doctors,
        specialty=query.specialty,
        after_name=after["name"] if after else None,
        after_id=after["id"] if after else None,
        limit=query.page_size + 1,
    )
    items = [Doctor(**row) for row in rows[: query.page_size]]
    token = None
    if len(rows) > query.page_size:
        token = paging.encode({"name": items[-1].name, "id": items[-1].id})
    return DoctorList(items=items, next_page_token=token)


def get_doctor(uow: UnitOfWork, doctor_id: UUID) -> Doctor:
    tx = uow.tx
    row = tx.first(SQL.select_doctor, id=doctor_id)
    if row is None:
        raise NotFound("no such doctor")
    return Doctor(**row)


def create_doctor(uow: UnitOfWork, caller: Caller, body: DoctorCreate) -> Doctor:
    tx = uow.tx
    require_role(caller, "admin")
    ensure_user(tx, caller)
    doctor_id = body.id or uuid4()
    if tx.first(USERS.insert_user, id=doctor_id, email=body.email.lower(), name=body.name, role="doctor") is None:
        raise Conflict("a user with this id or email already exists")
    tx.execute(SQL.insert_doctor_profile, user_id=doctor_id, specialty=body.specialty, timezone=body.timezone)
    return Doctor(id=doctor_id, name=body.name, specialty=body.specialty, timezone=body.timezone)


def publish_slots(uow: UnitOfWork, caller: Caller, doctor_id: UUID, window: AvailabilityWindow) -> PublishedSlots:
    tx = uow.tx
    """Creates the window's slots; those that exist or overlap existing ones are skipped.

    Says how many were skipped, so re-publishing a window is harmless and fills only
    what is missing, and how many minutes at the end were too short for a slot.
    """
    if not caller.is_admin() and not (caller.role == "doctor" and caller.id == doctor_id):
        raise Forbidden("only this doctor or an admin publishes this doctor's availability")
    doctor = get_doctor(uow, doctor_id)
    ensure_user(tx, caller)
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
    rows = tx.all(
        SQL.insert_slots,
        doctor_id=doctor_id,
        starts=[start for start, _ in future],
        ends=[end for _, end in future],
    )
    return PublishedSlots(
        items=[Slot(**row) for row in rows],
        next_page_token=None,
        skipped=len(wanted) - len(rows),
        unused_minutes=int(unused.total_seconds() // 60),
    )


def list_free_slots(uow: UnitOfWork, doctor_id: UUID, query: SlotQuery) -> SlotList:
    tx = uow.tx
    doctor = get_doctor(uow, doctor_id)
    zone = ZoneInfo(doctor.timezone)
    # Dates are the doctor's calendar days: from 00:00 of `from` to the end of `to`.
    range_start = datetime.combine(query.from_, time(0), tzinfo=zone)
    range_end = datetime.combine(query.to + timedelta(days=1), time(0), tzinfo=zone)
    after = paging.decode(query.page_token, {"doctor": paging.uuid, "after": paging.timestamp})
    if after is not None and after["doctor"] != doctor_id:
        raise BadRequest("page_token belongs to another doctor's listing")
    rows = tx.all(
        SQL.list_free_slots,
        doctor_id=doctor_id,
        range_start=range_start,
        range_end=range_end,
        after=after["after"] if after else None,
        limit=query.page_size + 1,
    )
    items = [Slot(**row) for row in rows[: query.page_size]]
    token = None
    if len(rows) > query.page_size:
        token = paging.encode({"doctor": str(doctor_id), "after": items[-1].start_time.isoformat()})
    return SlotList(items=items, next_page_token=token)


def publish_slots_and_hold(
    uow: UnitOfWork, caller: Caller, doctor_id: UUID, window: AvailabilityWindow
) -> PublishedSlots:
    """Publishes the window, and holds each new slot a waiting entry matches for it, in
    the same unit of work (decision 0013)."""
    from shared import waitlist

    published = publish_slots(uow, caller, doctor_id, window)
    for slot in published.items:
        waitlist.offer_freed_slot(uow, slot.id, caller.id, "published")
    return published
