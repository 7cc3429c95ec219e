"""Deadlocks: a patient's bookings and moves at once take turns instead of deadlocking,
and a deadlock the database breaks elsewhere is run again.

Bookings and moves of one patient at overlapping times are checked by the exclusion
constraint appointments_patient_no_overlap, and two such checks in flight at once wait
for each other: a deadlock. Each booking and each move therefore first takes its
patient's turn (an advisory lock). Cycles are built step by step on two real transactions, so they happen every
time: ours waits first, so ours is the one PostgreSQL rolls back (after deadlock_timeout).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pg8000.native
import pytest

from local.postgres import connect_native
from shared import appointments
from shared.auth import Caller
from shared.errors import Deadlock, PatientBusy
from shared.models import AppointmentChange, AppointmentCreate
from shared.unit_of_work import DEADLOCK_ATTEMPTS, UnitOfWork, run_and_commit
from tests.helpers import committed

Conn = pg8000.native.Connection


def new_doctor(conn: Conn) -> uuid.UUID:
    doctor = uuid.uuid4()
    conn.run(
        "INSERT INTO users (id, email, name, role) VALUES (:id, :e, 'Doc', 'doctor')", id=doctor, e=f"{doctor}@x.o"
    )
    conn.run("INSERT INTO doctors_profiles (user_id, specialty, timezone) VALUES (:id, 'GP', 'UTC')", id=doctor)
    return doctor


def new_slot(conn: Conn, doctor: uuid.UUID, start: datetime) -> uuid.UUID:
    rows = conn.run(
        "INSERT INTO slots (doctor_id, start_time, end_time) VALUES (:d, :s, :e) RETURNING id",
        d=doctor,
        s=start,
        e=start + timedelta(minutes=30),
    )
    return uuid.UUID(str(rows[0][0]))


def consecutive_slots(conn: Conn, count: int) -> list[uuid.UUID]:
    """`count` 30-minute slots of a new doctor, one after another, from three days ahead."""
    doctor = new_doctor(conn)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    return [new_slot(conn, doctor, start + timedelta(minutes=30 * i)) for i in range(count)]


class Clinic:
    """One patient, known already, and five doctors: two with a slot at X, two at Y, one at Z."""

    def __init__(self, conn: Conn) -> None:
        self.patient = Caller(uuid.uuid4(), "pat@example.com", "Pat", "patient")
        conn.run(
            "INSERT INTO users (id, email, name, role) VALUES (:id, :email, 'Pat', 'patient')",
            id=self.patient.id,
            email=self.patient.email,
        )
        conn.run("INSERT INTO patients_profiles (user_id) VALUES (:id)", id=self.patient.id)
        x = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        y = x + timedelta(hours=1)
        z = y + timedelta(hours=1)
        self.x1, self.y1, self.y2, self.x2, self.z = (
            new_slot(conn, new_doctor(conn), start) for start in (x, y, y, x, z)
        )

    def book(self, uow: UnitOfWork, slot: uuid.UUID) -> None:
        appointments.book(uow, self.patient, AppointmentCreate(slot_id=slot))


class Opponent(threading.Thread):
    """The other transaction: `first` in it, then, once ours waits on a lock, `second`."""

    def __init__(
        self, url: str, our_pid: int, first: Callable[[UnitOfWork], None], second: Callable[[UnitOfWork], None]
    ) -> None:
        super().__init__()
        self.url, self.our_pid, self.first, self.second = url, our_pid, first, second
        self.took_first = threading.Event()
        self.failed: list[BaseException] = []

    def run(self) -> None:
        try:
            with committed() as uow:
                self.first(uow)
                self.took_first.set()
                _waits_for_a_lock(self.url, self.our_pid)
                self.second(uow)  # waits for ours: the cycle
        except BaseException as error:  # the test thread reports it
            self.failed.append(error)
            self.took_first.set()


def _pid(uow: UnitOfWork) -> int:
    return int(uow.tx.one("SELECT pg_backend_pid() AS pid")["pid"])


@pytest.fixture
def clinic(sql: Conn) -> Clinic:
    return Clinic(sql)


def _waits_for_a_lock(url: str, pid: int) -> None:
    probe = connect_native(url)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = probe.run("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid", pid=pid)
            if rows and rows[0][0] == "Lock":
                return
            time.sleep(0.01)
        raise AssertionError(f"backend {pid} never waited for a lock")
    finally:
        probe.close()


def book_while_their_turn_is_held(
    database_url: str, patient: Caller, theirs: uuid.UUID, ours: uuid.UUID
) -> list[object]:
    """Theirs books `theirs` and, holding the patient's turn, lets ours start booking
    `ours` on another thread; commits once ours waits for the turn. Ours thus starts
    before theirs commits. Returns what ours came to: the appointment, or the error."""
    outcome: list[object] = []
    pid: list[int] = []

    def run_ours() -> None:
        try:
            with committed() as uow:
                pid.append(int(uow.tx.one("SELECT pg_backend_pid() AS pid")["pid"]))
                outcome.append(appointments.book(uow, patient, AppointmentCreate(slot_id=ours)))
        except Exception as error:  # the test thread reports it
            outcome.append(error)

    thread = threading.Thread(target=run_ours)
    with committed() as uow:
        appointments.book(uow, patient, AppointmentCreate(slot_id=theirs))
        thread.start()
        while not pid:
            time.sleep(0.01)
        _waits_for_a_lock(database_url, pid[0])
    thread.join(timeout=30)
    return outcome


def _race(database_url: str, sql: Conn, clinic: Clinic, theirs_first: Callable[[UnitOfWork], None]) -> None:
    """Ours books X1, then theirs runs `theirs_first` and books X2, then ours books Y1.

    theirs_first puts the patient at Y2. Unserialised, theirs' X2 waits for our X1 and
    our Y1 for theirs' Y2: a deadlock, and ours, run again, a second attempt. In turn,
    theirs waits for our patient's turn at its first step, then meets the committed Y1:
    the 409 of the rule, and no transaction rolled back for a deadlock.
    """
    theirs_failed: list[BaseException] = []
    theirs_pid: list[int] = []

    def theirs() -> None:
        try:
            with committed() as uow:
                theirs_pid.append(_pid(uow))
                theirs_first(uow)
                clinic.book(uow, clinic.x2)
        except BaseException as error:  # the test thread reports it
            theirs_failed.append(error)

    attempts = 0

    def ours(uow: UnitOfWork) -> None:
        nonlocal attempts
        attempts += 1
        clinic.book(uow, clinic.x1)
        if attempts == 1:
            thread.start()
            while not theirs_pid:
                time.sleep(0.01)
            _waits_for_a_lock(database_url, theirs_pid[0])  # at its first step, for our patient's turn
        clinic.book(uow, clinic.y1)

    thread = threading.Thread(target=theirs)
    run_and_commit(ours)
    thread.join(timeout=30)
    assert attempts == 1
    assert [type(error) for error in theirs_failed] == [PatientBusy]
    rows = sql.run(
        "SELECT slot_id FROM appointments WHERE patient_id = :p AND status = 'BOOKED' AND slot_id = ANY(:s)",
        p=clinic.patient.id,
        s=[clinic.x1, clinic.y1, clinic.x2, clinic.y2],
    )
    assert sorted(uuid.UUID(str(slot)) for (slot,) in rows) == sorted([clinic.x1, clinic.y1])


def _audit_rows(sql: Conn, clinic: Clinic) -> list[str]:
    rows = sql.run(
        "SELECT a.action FROM audit_appointment AS a JOIN appointments AS p ON p.id = a.appointment_id"
        " WHERE p.patient_id = :p ORDER BY a.id",
        p=clinic.patient.id,
    )
    return [str(action) for (action,) in rows]


def test_a_patients_bookings_at_once_take_turns_instead_of_deadlocking(
    database_url: str, sql: Conn, clinic: Clinic
) -> None:
    """Theirs books Y2 then X2 while ours books X1 then Y1."""
    _race(database_url, sql, clinic, lambda uow: clinic.book(uow, clinic.y2))
    assert _audit_rows(sql, clinic) == ["BOOKED", "BOOKED"]


def test_a_move_and_a_booking_of_one_patient_take_turns(database_url: str, sql: Conn, clinic: Clinic) -> None:
    """Theirs moves the patient's visit at Z to Y2, then books X2, while ours books X1
    then Y1. Before moves took the patient's turn too, this deadlocked."""
    with committed() as uow:
        visit = appointments.book(uow, clinic.patient, AppointmentCreate(slot_id=clinic.z))

    def move_to_y2(uow: UnitOfWork) -> None:
        appointments.change(uow, clinic.patient, visit.id, AppointmentChange(slot_id=clinic.y2))

    _race(database_url, sql, clinic, move_to_y2)
    assert _audit_rows(sql, clinic) == ["BOOKED", "BOOKED", "BOOKED"]
    assert sql.run("SELECT slot_id FROM appointments WHERE id = :id", id=visit.id) == [[clinic.z]]


def _advisory_cycle(database_url: str, uow: UnitOfWork, opponents: list[Opponent]) -> None:
    """Two advisory locks taken in opposite orders by this transaction and an opponent."""
    uow.tx.execute("SELECT pg_advisory_xact_lock(1)")
    opponent = Opponent(
        database_url,
        _pid(uow),
        lambda u: u.tx.execute("SELECT pg_advisory_xact_lock(2)"),
        lambda u: u.tx.execute("SELECT pg_advisory_xact_lock(1)"),
    )
    opponents.append(opponent)
    opponent.start()
    assert opponent.took_first.wait(timeout=10)
    uow.tx.execute("SELECT pg_advisory_xact_lock(2)")


def test_a_broken_deadlock_is_run_again(database_url: str, sql: Conn, clinic: Clinic) -> None:
    attempts = 0
    opponents: list[Opponent] = []

    def work(uow: UnitOfWork) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            _advisory_cycle(database_url, uow, opponents)
        clinic.book(uow, clinic.x1)

    run_and_commit(work)
    opponents[0].join(timeout=30)
    assert opponents[0].failed == []
    assert attempts == 2
    assert sql.run("SELECT count(*) FROM appointments WHERE patient_id = :p", p=clinic.patient.id) == [[1]]


def test_one_transaction_alone_would_have_answered_503(database_url: str) -> None:
    """The same cycle in a plain unit of work: what run_and_commit spares the caller."""
    opponents: list[Opponent] = []
    with pytest.raises(Deadlock), committed() as uow:
        _advisory_cycle(database_url, uow, opponents)
    opponents[0].join(timeout=30)
    assert opponents[0].failed == []


def test_a_deadlock_in_every_attempt_is_a_503(database_url: str) -> None:
    attempts = 0
    opponents: list[Opponent] = []

    def work(uow: UnitOfWork) -> None:
        nonlocal attempts
        attempts += 1
        _advisory_cycle(database_url, uow, opponents)

    with pytest.raises(Deadlock):
        run_and_commit(work)
    for opponent in opponents:
        opponent.join(timeout=30)
        assert opponent.failed == []
    assert attempts == DEADLOCK_ATTEMPTS
