"""Demo data: 3 doctors in three time zones, two weeks of availability, 5 patients, 1 admin.

Idempotent: fixed ids, and slots that exist are skipped, so a re-run on a later
day only tops the availability up to two weeks ahead.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from shared.db.sqlfiles import queries
from shared.timeslots import cut_window
from shared.unit_of_work import Transaction, UnitOfWork

USERS = queries("users")
DOCTORS = queries("doctors")

ADMIN = (UUID("00000000-0000-4000-8000-000000000001"), "admin@clinic.example", "Clinic Admin")
DOCTORS_SEED = [
    (
        UUID("10000000-0000-4000-8000-000000000001"),
        "ada.okafor@clinic.example",
        "Dr. Ada Okafor",
        "Cardiology",
        "America/New_York",
    ),
    (
        UUID("10000000-0000-4000-8000-000000000002"),
        "jonas.berg@clinic.example",
        "Dr. Jonas Berg",
        "Dermatology",
        "Europe/Berlin",
    ),
    (
        UUID("10000000-0000-4000-8000-000000000003"),
        "yuki.tanaka@clinic.example",
        "Dr. Yuki Tanaka",
        "General Practice",
        "Asia/Tokyo",
    ),
]
PATIENTS_SEED = [
    (UUID(f"20000000-0000-4000-8000-00000000000{n}"), f"patient{n}@example.com", name)
    for n, name in enumerate(["Maria Silva", "Tom Becker", "Aiko Sato", "Liam Murphy", "Sara Haddad"], 1)
]
# Local working hours, cut into 30-minute slots, Monday to Friday.
WINDOWS = [(time(9), time(12)), (time(13), time(17))]
SLOT_MINUTES = 30
DAYS = 14


def seed(today: date | None = None) -> dict[str, int]:
    with UnitOfWork() as uow:
        tx = uow.tx
        _user(tx, *ADMIN, role="admin")
        for user_id, email, name in PATIENTS_SEED:
            _user(tx, user_id, email, name, role="patient")
            tx.execute(USERS.insert_patient_profile_if_missing, user_id=user_id)
        slots = 0
        for user_id, email, name, specialty, zone in DOCTORS_SEED:
            if _user(tx, user_id, email, name, role="doctor"):
                tx.execute(DOCTORS.insert_doctor_profile, user_id=user_id, specialty=specialty, timezone=zone)
            slots += _availability(tx, user_id, ZoneInfo(zone), today)
        uow.commit()
    return {"doctors": len(DOCTORS_SEED), "patients": len(PATIENTS_SEED), "new_slots": slots}


def _user(tx: Transaction, user_id: UUID, email: str, name: str, role: str) -> bool:
    """Creates the user if missing; True when it was created now."""
    if tx.first(USERS.select_user, id=user_id):
        return False
    tx.execute(USERS.insert_user, id=user_id, email=email, name=name, role=role)
    return True


def _availability(tx: Transaction, doctor_id: UUID, zone: ZoneInfo, today: date | None) -> int:
    first = today or datetime.now(zone).date()
    now = datetime.now(UTC)
    starts, ends = [], []
    for offset in range(DAYS):
        day = first + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for start, end in WINDOWS:
            for slot_start, slot_end in cut_window(day, start, end, SLOT_MINUTES, zone):
                if slot_start > now:
                    starts.append(slot_start)
                    ends.append(slot_end)
    rows = tx.all(DOCTORS.insert_slots, doctor_id=doctor_id, starts=starts, ends=ends)
    return len(rows)
