"""Doctors, slots and bookings made through the real services, for the notification tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4

from shared import appointments, doctors
from shared.auth import Caller
from shared.db import transaction
from shared.models import AppointmentChange, AppointmentCreate, AvailabilityWindow, DoctorCreate
from shared.settings import get_settings

ADMIN = Caller(id=uuid4(), email="admin-notify@example.com", name="Admin", role="admin")


def doctor(timezone: str = "Europe/Berlin") -> Caller:
    doctor_id = uuid4()
    caller = Caller(
        id=doctor_id, email=f"dr-{doctor_id.hex[:10]}@example.com", name=f"Dr. {doctor_id.hex[:6]}", role="doctor"
    )
    with transaction() as tx:
        doctors.create_doctor(
            tx,
            ADMIN,
            DoctorCreate(id=doctor_id, email=caller.email, name=caller.name, specialty="Testing", timezone=timezone),
        )
    return caller


def patient() -> Caller:
    patient_id = uuid4()
    return Caller(id=patient_id, email=f"pt-{patient_id.hex[:10]}@example.com", name="Pat O'Brien, Jr.", role="patient")


def slots(owner: Caller, day: date, start: str = "09:00", end: str = "12:00", minutes: int = 30) -> list[UUID]:
    window = AvailabilityWindow(
        date=day, start=time.fromisoformat(start), end=time.fromisoformat(end), slot_minutes=minutes
    )
    with transaction() as tx:
        created = doctors.publish_slots(tx, owner, owner.id, window).items
    return [slot.id for slot in created]


def book(who: Caller, slot_id: UUID) -> tuple[UUID, list[int]]:
    with transaction() as tx:
        appointment, outbox_ids = appointments.book(tx, who, AppointmentCreate(slot_id=slot_id))
    return appointment.id, outbox_ids


def change(who: Caller, appointment_id: UUID, **body: Any) -> list[int]:
    with transaction() as tx:
        _, outbox_ids = appointments.change(tx, who, appointment_id, AppointmentChange(**body))
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
