"""A deadlock the database breaks is run again, so the caller gets the rule's answer.

Bookings of one patient at overlapping times are checked by the exclusion constraint
appointments_patient_no_overlap, and concurrent checks can wait for each other. Here
each cycle is built step by step on two real transactions, so it happens every time:
ours waits first, so ours is the one PostgreSQL rolls back (after deadlock_timeout).
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
from shared.db import DEADLOCK_ATTEMPTS, Tx, in_transaction, transaction
from shared.errors import Deadlock, PatientBusy
from shared.models import AppointmentCreate

Conn = pg8000.native.Connection


class Clinic:
    """One patient, known already, and four doctors: two with a slot at X, two at Y."""

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
        self.x1, self.y1, self.y2, self.x2 = (self._slot(conn, n, start) for n, start in enumerate((x, y, y, x)))

    @staticmethod
    def _slot(conn: Conn, n: int, start: datetime) -> uuid.UUID:
        doctor = uuid.uuid4()
        conn.run(
            "INSERT INTO users (id, email, name, role) VALUES (:id, :email, 'Doc', 'doctor')",
            id=doctor,
            email=f"doc{n}@example.com",
        )
        conn.run("INSERT INTO doctors_profiles (user_id, specialty, timezone) VALUES (:id, 'GP', 'UTC')", id=doctor)
        rows = conn.run(
            "INSERT INTO slots (doctor_id, start_time, end_time) VALUES (:d, :s, :e) RETURNING id",
            d=doctor,
            s=start,
            e=start + timedelta(minutes=30),
        )
        return uuid.UUID(str(rows[0][0]))

    def book(self, tx: Tx, slot: uuid.UUID) -> None:
        appointments.book(tx, self.patient, AppointmentCreate(slot_id=slot))


class Opponent(threading.Thread):
    """The other transaction: `first` in it, then, once ours waits on a lock, `second`."""

    def __init__(self, url: str, our_pid: int, first: Callable[[Tx], None], second: Callable[[Tx], None]) -> None:
        super().__init__()
        self.url, self.our_pid, self.first, self.second = url, our_pid, first, second
        self.took_first = threading.Event()
        self.failed: list[BaseException] = []

    def run(self) -> None:
        try:
            with transaction() as tx:
                self.first(tx)
                self.took_first.set()
                self._until_ours_waits()
                self.second(tx)  # waits for ours: the cycle
        except BaseException as error:  # the test thread reports it
            self.failed.append(error)
            self.took_first.set()

    def _until_ours_waits(self) -> None:
        probe = connect_native(self.url)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                rows = probe.run("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid", pid=self.our_pid)
                if rows and rows[0][0] == "Lock":
                    return
                time.sleep(0.01)
            raise AssertionError("our transaction never waited for the opponent's lock")
        finally:
            probe.close()


def _pid(tx: Tx) -> int:
    return int(tx.one("SELECT pg_backend_pid() AS pid")["pid"])


@pytest.fixture
def clinic(sql: Conn) -> Clinic:
    return Clinic(sql)


def test_a_broken_deadlock_is_run_again_and_answers_the_conflict(database_url: str, sql: Conn, clinic: Clinic) -> None:
    attempts = 0
    opponents: list[Opponent] = []

    def work(tx: Tx) -> None:
        nonlocal attempts
        attempts += 1
        clinic.book(tx, clinic.x1)
        if attempts == 1:
            opponent = Opponent(
                database_url, _pid(tx), lambda t: clinic.book(t, clinic.y2), lambda t: clinic.book(t, clinic.x2)
            )
            opponents.append(opponent)
            opponent.start()
            assert opponent.took_first.wait(timeout=10)
        clinic.book(tx, clinic.y1)  # overlaps the opponent's uncommitted Y2

    with pytest.raises(PatientBusy):
        in_transaction(work)
    opponents[0].join(timeout=30)
    assert opponents[0].failed == []
    # Run again after the rollback, X1 met the opponent's committed X2: the 409 of the rule.
    assert attempts == 2
    rows = sql.run(
        "SELECT slot_id, status FROM appointments WHERE patient_id = :p ORDER BY start_time", p=clinic.patient.id
    )
    assert [(uuid.UUID(str(slot)), status) for slot, status in rows] == [(clinic.x2, "BOOKED"), (clinic.y2, "BOOKED")]
    audits = sql.run(
        "SELECT count(*) FROM audit_appointment AS a JOIN appointments AS p ON p.id = a.appointment_id"
        " WHERE p.patient_id = :p",
        p=clinic.patient.id,
    )
    assert audits == [[2]]


def test_one_transaction_alone_would_have_answered_503(database_url: str, sql: Conn, clinic: Clinic) -> None:
    """The same cycle in a plain transaction: what in_transaction spares the caller."""
    with pytest.raises(Deadlock), transaction() as tx:
        clinic.book(tx, clinic.x1)
        opponent = Opponent(
            database_url, _pid(tx), lambda t: clinic.book(t, clinic.y2), lambda t: clinic.book(t, clinic.x2)
        )
        opponent.start()
        assert opponent.took_first.wait(timeout=10)
        clinic.book(tx, clinic.y1)
    opponent.join(timeout=30)
    assert opponent.failed == []


def test_a_deadlock_in_every_attempt_is_a_503(database_url: str) -> None:
    attempts = 0
    opponents: list[Opponent] = []

    def work(tx: Tx) -> None:
        nonlocal attempts
        attempts += 1
        tx.execute("SELECT pg_advisory_xact_lock(1)")
        opponent = Opponent(
            database_url,
            _pid(tx),
            lambda t: t.execute("SELECT pg_advisory_xact_lock(2)"),
            lambda t: t.execute("SELECT pg_advisory_xact_lock(1)"),
        )
        opponents.append(opponent)
        opponent.start()
        assert opponent.took_first.wait(timeout=10)
        tx.execute("SELECT pg_advisory_xact_lock(2)")

    with pytest.raises(Deadlock):
        in_transaction(work)
    for opponent in opponents:
        opponent.join(timeout=30)
        assert opponent.failed == []
    assert attempts == DEADLOCK_ATTEMPTS
