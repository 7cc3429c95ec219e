"""A patient books themself only while they hold fewer than MAX_UPCOMING_APPOINTMENTS
upcoming appointments (whoever booked them), so that a few accounts cannot take every
slot of a clinic; beyond it only an admin books for them. Counted in the patient's
turn, so bookings at once cannot slip past it either."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pg8000.native
import pytest

from shared import appointments
from shared.auth import Caller
from shared.errors import TooManyUpcoming
from shared.models import AppointmentChange, AppointmentCreate
from shared.repositories import Booking
from tests.helpers import committed
from tests.integration.notify_support import environment
from tests.integration.test_deadlocks import book_while_their_turn_is_held, consecutive_slots, new_doctor, new_slot
from tests.integration.test_first_use import THREADS, new_caller, together

Conn = pg8000.native.Connection
CAP = 3


@pytest.fixture
def slots(sql: Conn) -> list[uuid.UUID]:
    """THREADS future slots of one doctor, one after another."""
    return consecutive_slots(sql, THREADS)


def book(caller: Caller, slot: uuid.UUID, patient: Caller | None = None) -> appointments.Appointment:
    body = AppointmentCreate(slot_id=slot, patient_id=patient.id if patient else None)
    with environment(MAX_UPCOMING_APPOINTMENTS=str(CAP)), committed() as uow:
        return appointments.book(uow, caller, body)


def booked(sql: Conn, patient: Caller) -> int:
    rows = sql.run("SELECT count(*) FROM appointments WHERE patient_id = :p AND status = 'BOOKED'", p=patient.id)
    return int(rows[0][0])


def test_bookings_at_once_stop_at_the_cap(sql: Conn, slots: list[uuid.UUID]) -> None:
    patient = new_caller()
    with environment(MAX_UPCOMING_APPOINTMENTS=str(CAP)):
        errors = together(lambda i: book(patient, slots[i]) and None)
    assert len(errors) == THREADS - CAP
    assert all(error.startswith("TooManyUpcoming(") for error in errors), errors
    assert booked(sql, patient) == CAP


def test_a_booking_that_waited_for_its_turn_counts_what_the_turn_before_booked(
    sql: Conn, database_url: str, slots: list[uuid.UUID]
) -> None:
    """Ours starts while theirs holds the patient's turn, and so before theirs commits:
    its count must still see theirs (a count as of our statement's start would not)."""
    patient = new_caller()
    for slot in slots[: CAP - 1]:
        book(patient, slot)
    with environment(MAX_UPCOMING_APPOINTMENTS=str(CAP)):  # for both threads, to the end
        # Theirs: the last one allowed.
        outcome = book_while_their_turn_is_held(database_url, patient, slots[CAP - 1], slots[CAP])
    assert [type(o) for o in outcome] == [TooManyUpcoming]
    assert booked(sql, patient) == CAP


def test_the_cap_counts_only_what_is_still_to_come(sql: Conn, slots: list[uuid.UUID]) -> None:
    patient = new_caller()
    with committed() as uow:
        uow.accounts.ensure(patient)
    _visit_that_has_begun(sql, patient)
    held = [book(patient, slot) for slot in slots[:CAP]]
    with pytest.raises(TooManyUpcoming, match=f"you already hold {CAP} upcoming appointments"):
        book(patient, slots[CAP])
    # A move keeps the count, so it is allowed at the cap.
    with committed() as uow:
        appointments.change(uow, patient, held[0].id, AppointmentChange(slot_id=slots[CAP + 1]))
    # A cancelled one no longer counts.
    with committed() as uow:
        appointments.change(uow, patient, held[1].id, AppointmentChange(status="CANCELLED"))
    book(patient, slots[CAP + 2])
    assert booked(sql, patient) == CAP + 1  # the one that has begun, and CAP to come


def _visit_that_has_begun(sql: Conn, patient: Caller) -> None:
    doctor = new_doctor(sql)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    sql.run("INSERT INTO patients_profiles (user_id) VALUES (:id) ON CONFLICT DO NOTHING", id=patient.id)
    sql.run(
        "INSERT INTO appointments (slot_id, patient_id, doctor_id, start_time, end_time) VALUES (:s, :p, :d, :b, :e)",
        s=new_slot(sql, doctor, start),
        p=patient.id,
        d=doctor,
        b=start,
        e=start + timedelta(minutes=30),
    )


def test_an_admin_books_past_the_cap_for_a_patient(sql: Conn, slots: list[uuid.UUID]) -> None:
    patient = new_caller()
    for slot in slots[:CAP]:
        book(patient, slot)
    admin = new_caller("admin")
    extra = book(admin, slots[CAP], patient=patient)
    assert extra.patient_id == patient.id
    assert booked(sql, patient) == CAP + 1


def test_the_booking_statement_says_which_check_refused(sql: Conn, slots: list[uuid.UUID]) -> None:
    """The refusal comes from the statement that refused, with the count it refused on:
    nothing is queried again to guess it (a cancel committed since cannot make it a 404)."""
    patient = new_caller()
    for slot in slots[:CAP]:
        book(patient, slot)
    capped = Booking(patient, patient.id, slots[CAP], None, max_upcoming=CAP, max_changes=None)
    with committed() as uow:
        refused = uow.appointments.book(capped)
    assert (refused.appointment, refused.refusal, refused.upcoming) == (None, "too_many_upcoming", CAP)
    missing = Booking(patient, patient.id, uuid.uuid4(), None, max_upcoming=None, max_changes=None)
    with committed() as uow:
        assert uow.appointments.book(missing).refusal == "no_slot"
