"""A new identity's first requests arrive together (an app opening several screens at
once): each creates the user row from the token, and none may fail for it. An email
that really belongs to another account is still a 409."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pg8000.native
import pytest

from shared import appointments
from shared.auth import Caller
from shared.errors import Conflict
from shared.models import AppointmentCreate
from shared.repositories import USERS
from tests.helpers import committed
from tests.integration.notify_support import environment

Conn = pg8000.native.Connection
THREADS = 16


def together(work: Callable[[int], None]) -> list[str]:
    """Runs work(i) on THREADS threads released at once; returns the errors."""
    barrier = threading.Barrier(THREADS)
    errors: list[str] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            work(i)
        except Exception as error:
            errors.append(repr(error))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def new_caller(role: str = "patient") -> Caller:
    ident = uuid.uuid4()
    return Caller(ident, f"{ident.hex}@example.com", "New", role)  # type: ignore[arg-type]


def test_concurrent_first_use_creates_the_user_once(sql: Conn) -> None:
    for _ in range(20):
        caller = new_caller()

        def first_use(_: int, caller: Caller = caller) -> None:
            with committed() as uow:
                uow.accounts.ensure(caller)

        assert together(first_use) == []
        assert sql.run("SELECT email FROM users WHERE id = :id", id=caller.id) == [[caller.email]]


def test_concurrent_first_bookings_create_the_user_once(sql: Conn) -> None:
    doctor = uuid.uuid4()
    sql.run("INSERT INTO users (id, email, name, role) VALUES (:id, 'doc@example.com', 'Doc', 'doctor')", id=doctor)
    sql.run("INSERT INTO doctors_profiles (user_id, specialty, timezone) VALUES (:id, 'GP', 'UTC')", id=doctor)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    for round_number in range(10):
        caller = new_caller()
        slots = [
            sql.run(
                "INSERT INTO slots (doctor_id, start_time, end_time) VALUES (:d, :s, :e) RETURNING id",
                d=doctor,
                s=start + timedelta(minutes=5 * (THREADS * round_number + i)),
                e=start + timedelta(minutes=5 * (THREADS * round_number + i) + 5),
            )[0][0]
            for i in range(THREADS)
        ]

        def first_booking(i: int, caller: Caller = caller, slots: list[object] = slots) -> None:
            with committed() as uow:
                appointments.book(uow, caller, AppointmentCreate.model_validate({"slot_id": str(slots[i])}))

        with environment(MAX_UPCOMING_APPOINTMENTS=str(THREADS)):  # each may book
            assert together(first_booking) == []
        assert sql.run("SELECT count(*) FROM appointments WHERE patient_id = :id", id=caller.id) == [[THREADS]]


def test_an_email_of_another_account_is_still_a_conflict(sql: Conn) -> None:
    owner = new_caller()
    with committed() as uow:
        uow.accounts.ensure(owner)
    impostor = Caller(uuid.uuid4(), owner.email, "Other", "patient")
    with pytest.raises(Conflict), committed() as uow:
        uow.accounts.ensure(impostor)
    with pytest.raises(Conflict), committed() as uow:
        appointments.book(uow, impostor, AppointmentCreate.model_validate({"slot_id": str(uuid.uuid4())}))
    assert sql.run("SELECT count(*) FROM users WHERE email = :e", e=owner.email) == [[1]]
    assert sql.run("SELECT count(*) FROM users WHERE id = :id", id=impostor.id) == [[0]]


def test_a_taken_email_is_no_error_in_the_database(sql: Conn) -> None:
    """insert_user answers a taken email with no row, not a unique violation: the server
    then logs no DETAIL line naming the email, and the transaction goes on."""
    owner = new_caller()
    with committed() as uow:
        uow.accounts.ensure(owner)
    with committed() as uow:
        taken = uow.tx.first(USERS.insert_user, id=uuid.uuid4(), email=owner.email, name="Other", role="patient")
        assert taken is None
        assert uow.tx.one("SELECT 1 AS still")["still"] == 1  # an error would have aborted the transaction
