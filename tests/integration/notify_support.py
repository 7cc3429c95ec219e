"""Doctors, slots and bookings made through the real services, for the notification tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

from shared import appointments, doctors
from shared.auth import Caller
from shared.models import AppointmentChange, AppointmentCreate, AvailabilityWindow, DoctorCreate
from shared.settings import get_settings
from shared.unit_of_work import UnitOfWork, run_and_commit

T = TypeVar("T")
ADMIN = Caller(id=uuid4(), email="admin-notify@example.com", name="Admin", role="admin")


def doctor(timezone: str = "Europe/Berlin") -> Caller:
    doctor_id = uuid4()
    caller = Caller(
        id=doctor_id, email=f"dr-{doctor_id.hex[:10]}@example.com", name=f"Dr. {doctor_id.hex[:6]}", role="doctor"
    )
    run_and_commit(
        lambda uow: doctors.create_doctor(
            uow,
            ADMIN,
            DoctorCreate(id=doctor_id, email=caller.email, name=caller.name, specialty="Testing", timezone=timezone),
        )
    )
    return caller


def patient() -> Caller:
    patient_id = uuid4()
    return Caller(id=patient_id, email=f"pt-{patient_id.hex[:10]}@example.com", name="Pat O'Brien, Jr.", role="patient")


def slots(owner: Caller, day: date, start: str = "09:00", end: str = "12:00", minutes: int = 30) -> list[UUID]:
    window = AvailabilityWindow(
        date=day, start=time.fromisoformat(start), end=time.fromisoformat(end), slot_minutes=minutes
    )
    created = run_and_commit(lambda uow: doctors.publish_slots(uow, owner, owner.id, window).items)
    return [slot.id for slot in created]


class UndispatchedUnitOfWork(UnitOfWork):
    """Commits without dispatching: these tests send the outbox rows themselves."""

    def after_commit(self) -> None:
        pass


def committed_without_dispatch(work: Callable[[UnitOfWork], T]) -> tuple[T, list[int]]:
    """What `work` returned, and the outbox rows its committed unit of work wrote."""
    with UndispatchedUnitOfWork() as uow:
        result = work(uow)
        uow.commit()
    return result, uow.outbox_ids


def book(who: Caller, slot_id: UUID) -> tuple[UUID, list[int]]:
    appointment, outbox_ids = committed_without_dispatch(
        lambda uow: appointments.book(uow, who, AppointmentCreate(slot_id=slot_id))
    )
    return appointment.id, outbox_ids


def change(who: Caller, appointment_id: UUID, **body: Any) -> list[int]:
    _, outbox_ids = committed_without_dispatch(
        lambda uow: appointments.change(uow, who, appointment_id, AppointmentChange(**body))
    )
    return outbox_ids


def in_days(days: int) -> date:
    return (datetime.now() + timedelta(days=days)).date()


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Sets (or with None, removes) environment variables and re-reads the settings."""
    previous = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
