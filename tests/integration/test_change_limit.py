"""A patient makes at most MAX_CHANGES_PER_HOUR bookings, cancellations and moves of
their own appointments in any hour; past it their bookings and moves are refused (409
too-many-changes, with when to come back), so that a script looping book-cancel cannot flood the clinic's
mail and its append-only trail. Cancelling is never refused: it frees the slot. Counted
in the patient's turn, so changes at once cannot slip past it either."""

from __future__ import annotations

import uuid

import pg8000.native
import pytest

from shared import appointments
from shared.auth import Caller
from shared.errors import TooManyChanges
from shared.models import AppointmentChange, AppointmentCreate
from tests.helpers import committed
from tests.integration.notify_support import environment
from tests.integration.test_deadlocks import book_while_their_turn_is_held, consecutive_slots
from tests.integration.test_first_use import THREADS, new_caller, together

Conn = pg8000.native.Connection
LIMIT = 4


@pytest.fixture
def slots(sql: Conn) -> list[uuid.UUID]:
    """2 x THREADS future slots of one doctor, one after another."""
    return consecutive_slots(sql, 2 * THREADS)


def book(caller: Caller, slot: uuid.UUID, patient: Caller | None = None) -> appointments.Appointment:
    body = AppointmentCreate(slot_id=slot, patient_id=patient.id if patient else None)
    with environment(MAX_CHANGES_PER_HOUR=str(LIMIT)), committed() as uow:
        return appointments.book(uow, caller, body)


def change(caller: Caller, appointment: uuid.UUID, **body: object) -> appointments.Appointment:
    with environment(MAX_CHANGES_PER_HOUR=str(LIMIT)), committed() as uow:
        return appointments.change(uow, caller, appointment, AppointmentChange.model_validate(body))


def changes_by(sql: Conn, actor: Caller) -> int:
    return int(sql.run("SELECT count(*) FROM audit_appointment WHERE actor_id = :a", a=actor.id)[0][0])


def test_bookings_moves_and_cancels_count_and_the_next_booking_or_move_is_refused(
    sql: Conn, slots: list[uuid.UUID]
) -> None:
    patient = new_caller()
    first = book(patient, slots[0])
    change(patient, first.id, slot_id=str(slots[1]))
    change(patient, first.id, status="CANCELLED")
    second = book(patient, slots[2])
    assert changes_by(sql, patient) == LIMIT
    with pytest.raises(TooManyChanges) as refused:
        book(patient, slots[3])
    assert 3590 <= refused.value.retry_after <= 3600
    assert f"you made {LIMIT} changes to your appointments in the last hour, the most allowed is {LIMIT}" in (
        refused.value.detail
    )
    with pytest.raises(TooManyChanges):
        change(patient, second.id, slot_id=str(slots[3]))
    # Nothing was written for the refused ones; a cancel still goes through.
    assert changes_by(sql, patient) == LIMIT
    assert change(patient, second.id, status="CANCELLED").status == "CANCELLED"
    assert changes_by(sql, patient) == LIMIT + 1


def test_the_clinic_is_not_held_to_it_nor_does_it_use_up_the_patients(sql: Conn, slots: list[uuid.UUID]) -> None:
    patient, admin = new_caller(), new_caller("admin")
    last = [book(patient, slot) for slot in slots[: LIMIT - 1]][-1]
    # The clinic books and moves for them, past the limit, and on their appointments too.
    for slot in slots[LIMIT : 2 * LIMIT + 1]:
        assert book(admin, slot, patient=patient).status == "BOOKED"
    assert change(admin, last.id, slot_id=str(slots[2 * LIMIT + 1])).slot_id == slots[2 * LIMIT + 1]
    # None of it used up the patient's own: they still have one change left, and then none.
    book(patient, slots[2 * LIMIT + 2])
    with pytest.raises(TooManyChanges):
        book(patient, slots[2 * LIMIT + 3])
    assert changes_by(sql, patient) == LIMIT


def test_changes_older_than_an_hour_do_not_count_and_retry_after_says_when_one_does_not(
    sql: Conn, slots: list[uuid.UUID]
) -> None:
    patient = new_caller()
    first = book(patient, slots[0])
    # The trail is append-only: older changes are written as they would have been.
    for minutes in (61, 90, 50, 40):
        older_change(sql, first.id, patient, minutes)
    # Counted: the booking and the changes 50 and 40 minutes ago; 61 and 90 are past the hour.
    book(patient, slots[1])
    with pytest.raises(TooManyChanges) as refused:
        book(patient, slots[2])
    # The oldest change that counts, 50 minutes ago, is an hour old in 10 minutes.
    assert 590 <= refused.value.retry_after <= 600


def test_past_the_limit_retry_after_waits_until_the_count_is_below_it(sql: Conn, slots: list[uuid.UUID]) -> None:
    """Cancels are never refused, so the count can be past the limit: the wait is until
    enough changes age out, not only the oldest."""
    patient = new_caller()
    first = book(patient, slots[0])
    for minutes in (50, 40, 30, 20):  # LIMIT + 1 changes in the hour with the booking
        older_change(sql, first.id, patient, minutes)
    with pytest.raises(TooManyChanges) as refused:
        book(patient, slots[1])
    # Below the limit again once those of 50 and 40 minutes ago are an hour old: in 20 minutes.
    assert 1190 <= refused.value.retry_after <= 1200
    assert f"you made {LIMIT + 1} changes" in refused.value.detail


def older_change(sql: Conn, appointment: uuid.UUID, actor: Caller, minutes_ago: int) -> None:
    sql.run(
        "INSERT INTO audit_appointment (appointment_id, action, to_status, actor_id, occurred_at)"
        " VALUES (:a, 'CANCELLED', 'CANCELLED', :p, now() - make_interval(mins => :m))",
        a=appointment,
        p=actor.id,
        m=minutes_ago,
    )


def test_a_booking_that_waited_for_its_turn_counts_the_change_the_turn_before_made(
    sql: Conn, database_url: str, slots: list[uuid.UUID]
) -> None:
    """Ours starts while theirs holds the patient's turn, and so before theirs commits:
    its count must still see theirs (a count as of our statement's start would not)."""
    patient = new_caller()
    for slot in slots[: LIMIT - 1]:
        book(patient, slot)
    with environment(MAX_CHANGES_PER_HOUR=str(LIMIT)):  # for both threads, to the end
        # Theirs: the last change allowed.
        outcome = book_while_their_turn_is_held(database_url, patient, slots[LIMIT - 1], slots[LIMIT])
    assert [type(o) for o in outcome] == [TooManyChanges]
    assert changes_by(sql, patient) == LIMIT


def test_changes_at_once_stop_at_the_limit(sql: Conn, slots: list[uuid.UUID]) -> None:
    patient = new_caller()
    book(patient, slots[0])
    with environment(MAX_CHANGES_PER_HOUR=str(LIMIT)):
        errors = together(lambda i: book(patient, slots[1 + i]) and None)
    assert len(errors) == THREADS - (LIMIT - 1)
    assert all(error.startswith("TooManyChanges(") for error in errors), errors
    assert changes_by(sql, patient) == LIMIT
