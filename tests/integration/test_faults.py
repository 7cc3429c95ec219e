"""A fault between the appointment write and the audit write (or after it) leaves nothing behind.

Faults are real triggers created in the test's own database; the services run in a
unit of work exactly as the functions run them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pg8000.native
import pytest

from shared import appointments, idempotency
from shared.auth import Caller
from shared.db.connection import get_pool
from shared.db.errors import IntegrityViolation, QueryError
from shared.errors import Busy, DatabaseUnavailable
from shared.models import AppointmentChange, AppointmentCreate
from shared.unit_of_work import UnitOfWork, run_and_commit
from tests.helpers import committed
from tests.integration.notify_support import UndispatchedUnitOfWork

Conn = pg8000.native.Connection
TABLES = ("appointments", "audit_appointment", "outbox", "idempotency_keys")


def fault(conn: Conn, table: str, when: str = "INSERT") -> None:
    conn.run(f"""
        CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected fault on {table}'; END; $$""")
    conn.run(f"CREATE TRIGGER injected_fault BEFORE {when} ON {table} FOR EACH ROW EXECUTE FUNCTION injected_fault()")


def heal(conn: Conn, table: str) -> None:
    conn.run(f"DROP TRIGGER injected_fault ON {table}")
    conn.run("DROP FUNCTION injected_fault()")


def counts(conn: Conn) -> dict[str, int]:
    return {table: int(conn.run(f"SELECT count(*) FROM {table}")[0][0]) for table in TABLES}


class World:
    def __init__(self, conn: Conn) -> None:
        self.patient = Caller(uuid.uuid4(), "patient@example.com", "Pat", "patient")
        self.doctor = uuid.uuid4()
        conn.run(
            "INSERT INTO users (id, email, name, role) VALUES (:id, 'doc@example.com', 'Doc', 'doctor')", id=self.doctor
        )
        conn.run(
            "INSERT INTO doctors_profiles (user_id, specialty, timezone) VALUES (:id, 'GP', 'UTC')", id=self.doctor
        )
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        self.slots = [
            uuid.UUID(
                str(
                    conn.run(
                        "INSERT INTO slots (doctor_id, start_time, end_time) VALUES (:d, :s, :e) RETURNING id",
                        d=self.doctor,
                        s=start + timedelta(hours=n),
                        e=start + timedelta(hours=n, minutes=30),
                    )[0][0]
                )
            )
            for n in range(2)
        ]


@pytest.fixture
def world(sql: Conn) -> World:
    return World(sql)


def book_like_the_function(world: World, key: str | None = "retry-1") -> None:
    """functions/book/main.py's POST /appointments with an Idempotency-Key, without HTTP."""
    body = AppointmentCreate(slot_id=world.slots[0], reason="checkup")
    request = idempotency.fingerprint("POST", "/appointments", body.model_dump_json().encode())

    def answer(uow: UnitOfWork) -> tuple[int, bytes]:
        def book() -> tuple[int, bytes]:
            return 201, appointments.book(uow, world.patient, body).model_dump_json().encode()

        return idempotency.answer_once(uow, world.patient, key, request, book) if key else book()

    run_and_commit(answer)


@pytest.mark.parametrize(
    ("table", "when"),
    [
        ("audit_appointment", "INSERT"),  # right after the appointment row
        ("idempotency_keys", "UPDATE"),  # the stored response
        ("outbox", "INSERT"),  # with the COMMIT, the last write of all
    ],
)
def test_a_fault_while_booking_leaves_nothing_behind(sql: Conn, world: World, table: str, when: str) -> None:
    before = counts(sql)
    fault(sql, table, when)
    with pytest.raises(QueryError, match="injected fault"):
        book_like_the_function(world)
    assert counts(sql) == before
    assert sql.run("SELECT count(*) FROM users WHERE id = :id", id=world.patient.id) == [[0]]
    assert sql.run("SELECT count(*) FROM patients_profiles WHERE user_id = :id", id=world.patient.id) == [[0]]
    # The same request, once the fault is gone, writes all of it: the test can tell.
    heal(sql, table)
    book_like_the_function(world)
    after = counts(sql)
    assert after["appointments"] == before["appointments"] + 1
    assert after["audit_appointment"] == before["audit_appointment"] + 1
    assert after["outbox"] > before["outbox"]
    assert after["idempotency_keys"] == before["idempotency_keys"] + 1


def booked(world: World) -> uuid.UUID:
    with committed() as uow:
        appointment = appointments.book(uow, world.patient, AppointmentCreate(slot_id=world.slots[0]))
    return appointment.id


STATE = "SELECT status, slot_id, updated_at FROM appointments WHERE id = :id"


@pytest.mark.parametrize(
    "change",
    [
        {"status": "CANCELLED", "reason": "ill"},
        {"slot_id": "second"},
    ],
)
@pytest.mark.parametrize("table", ["audit_appointment", "outbox"])
def test_a_fault_while_changing_leaves_the_appointment_as_it_was(
    sql: Conn, world: World, change: dict[str, str], table: str
) -> None:
    appointment_id = booked(world)
    before, state = counts(sql), sql.run(STATE, id=appointment_id)
    pending = sql.run("SELECT id FROM outbox WHERE appointment_id = :id ORDER BY id", id=appointment_id)
    body = AppointmentChange.model_validate(
        {**change, "slot_id": str(world.slots[1])} if "slot_id" in change else change
    )
    fault(sql, table)
    with pytest.raises(QueryError, match="injected fault"), committed() as uow:
        appointments.change(uow, world.patient, appointment_id, body)
    assert counts(sql) == before
    assert sql.run(STATE, id=appointment_id) == state
    # The reminders a cancel or move drops are still there: the drop was rolled back too.
    assert sql.run("SELECT id FROM outbox WHERE appointment_id = :id ORDER BY id", id=appointment_id) == pending
    heal(sql, table)
    with committed() as uow:
        changed = appointments.change(uow, world.patient, appointment_id, body)
    assert sql.run("SELECT count(*) FROM audit_appointment WHERE appointment_id = :id", id=appointment_id) == [[2]]
    assert (changed.status, changed.slot_id) != (state[0][0], state[0][1])


# -- the connection lost in the middle of a transaction -------------------------------------


@pytest.mark.parametrize("where", ["statement", "savepoint", "inside a savepoint", "commit"])
def test_a_connection_lost_mid_transaction_is_unavailable_then_recovers(sql: Conn, where: str) -> None:
    """The server ending a session (a restart, a failover) is a 503, never a 500."""
    with pytest.raises(DatabaseUnavailable), committed() as uow:
        pid = uow.tx.one("SELECT pg_backend_pid() AS pid")["pid"]
        sql.run("SELECT pg_terminate_backend(:pid)", pid=pid)
        if where == "statement":
            uow.tx.execute("SELECT 1")
        elif where == "savepoint":
            with uow.tx.savepoint():
                pass
        elif where == "inside a savepoint":
            with uow.tx.savepoint():
                uow.tx.execute("SELECT 1")
    # The broken connection left the pool; the next transaction gets a working one.
    with committed() as uow:
        assert uow.tx.one("SELECT 1 AS one")["one"] == 1


# -- BEGIN sent with the first statement -----------------------------------------------------


def test_the_first_statement_runs_inside_the_transaction(sql: Conn, world: World) -> None:
    """BEGIN rides in the first statement's round trip; a later failure still undoes that statement."""
    before = counts(sql)
    with pytest.raises(RuntimeError), committed() as uow:
        uow.tx.execute(
            "INSERT INTO users (id, email, name, role) VALUES (:id, 'first@example.com', 'First', 'patient')",
            id=uuid.uuid4(),
        )
        assert uow.tx.one("SELECT now() = statement_timestamp() AS fresh")["fresh"] is False  # inside a block
        raise RuntimeError("after the first statement")
    assert sql.run("SELECT count(*) FROM users WHERE email = 'first@example.com'") == [[0]]
    assert counts(sql) == before


def test_a_failing_first_statement_leaves_a_clean_connection(sql: Conn) -> None:
    with pytest.raises(QueryError), committed() as uow:
        uow.tx.execute("SELECT 1 / 0")
    for _ in range(3):  # the pool's connections are usable and outside any transaction
        with committed() as uow:
            assert uow.tx.one("SELECT current_setting('transaction_isolation') AS i, 1 AS one")["one"] == 1


def test_a_pooled_connection_killed_while_idle_is_replaced_unseen(sql: Conn) -> None:
    """A server restart kills idle pooled connections; the next request must not be a 503."""
    with committed() as uow:
        pid = uow.tx.one("SELECT pg_backend_pid() AS pid")["pid"]
    sql.run("SELECT pg_terminate_backend(:pid)", pid=pid)
    with committed() as uow:
        pid_after = uow.tx.one("SELECT pg_backend_pid() AS pid")["pid"]
    assert pid_after != pid
    sql.run("SELECT pg_terminate_backend(:pid)", pid=pid_after)
    with committed() as uow, uow.tx.savepoint():  # a savepoint as the first statement does the same
        assert uow.tx.one("SELECT pg_backend_pid() AS pid")["pid"] not in (pid, pid_after)


# -- a last statement sent with the COMMIT ------------------------------------------------------

INSERT_USER = "INSERT INTO users (id, email, name, role) VALUES (:id, :email, 'Later', 'patient') RETURNING id"


def test_a_last_statement_rides_with_the_commit_and_returns_its_rows(sql: Conn) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    with UnitOfWork() as uow:
        uow.tx.execute(INSERT_USER, id=first, email="later-1@example.com")
        assert uow.tx.execute_then_commit(INSERT_USER, id=second, email="later-2@example.com") == [{"id": second}]
    assert sql.run("SELECT count(*) FROM users WHERE email LIKE 'later-%'") == [[2]]


def test_a_failing_last_statement_rolls_back_the_whole_transaction(sql: Conn) -> None:
    taken = uuid.uuid4()
    sql.run("INSERT INTO users (id, email, name, role) VALUES (:id, 'taken@example.com', 'T', 'patient')", id=taken)
    with pytest.raises(IntegrityViolation), UnitOfWork() as uow:
        uow.tx.execute(INSERT_USER, id=uuid.uuid4(), email="kept-until-commit@example.com")
        uow.tx.execute_then_commit(INSERT_USER, id=taken, email="again@example.com")  # duplicate key
    assert sql.run("SELECT count(*) FROM users WHERE email = 'kept-until-commit@example.com'") == [[0]]
    with committed() as uow:  # the connection went back to the pool in step
        assert uow.tx.one("SELECT 2 AS two")["two"] == 2


def test_a_unit_of_work_not_committed_rolls_back(sql: Conn) -> None:
    user = uuid.uuid4()
    with UnitOfWork() as uow:
        uow.tx.execute(INSERT_USER, id=user, email="never-committed@example.com")
    assert sql.run("SELECT count(*) FROM users WHERE id = :id", id=user) == [[0]]


DUE = "2027-01-01T00:00:00+00:00"


def test_outbox_rows_are_written_with_the_commit_and_their_ids_kept(sql: Conn, world: World) -> None:
    appointment_id = booked(world)
    rows = [
        {
            "appointment_id": str(appointment_id),
            "target": "EVENT",
            "name": f"test-{n}",
            "payload": {},
            "deliver_at": "2027-01-01T00:00:00+00:00",
        }
        for n in range(2)
    ]
    with UndispatchedUnitOfWork() as uow:
        uow.add_outbox_rows(rows)
        uow.commit()
    names = sql.run("SELECT id, name FROM outbox WHERE name LIKE 'test-%' ORDER BY id")
    assert [row[0] for row in names] == uow.outbox_ids and [row[1] for row in names] == ["test-0", "test-1"]


def test_a_change_that_waits_too_long_for_a_lock_is_busy_and_changes_nothing(sql: Conn, world: World) -> None:
    """A lock held elsewhere past lock_timeout: a 503 to try again, never a 500."""
    from shared.web import problem

    appointment_id = booked(world)
    before = counts(sql)
    sql.run("BEGIN")
    sql.run("SELECT 1 FROM appointments WHERE id = :id FOR UPDATE", id=appointment_id)
    try:
        with pytest.raises(Busy) as raised, committed() as uow:
            appointments.change(uow, world.patient, appointment_id, AppointmentChange(status="CANCELLED"))
    finally:
        sql.run("ROLLBACK")
    body, status, headers = problem(raised.value)
    assert status == 503 and headers["Retry-After"] == "2"
    assert b"/problems/busy" in body and b"lock" not in body  # the driver's words stay in the logs
    assert counts(sql) == before
    with committed() as uow:  # the lock gone, the same change goes through
        changed = appointments.change(uow, world.patient, appointment_id, AppointmentChange(status="CANCELLED"))
    assert changed.status == "CANCELLED"


# -- what goes over the wire ---------------------------------------------------------------------


class _Recording:
    """A connection's socket file that keeps a copy of what is written to it."""

    def __init__(self, file: Any) -> None:
        self.file, self.sent = file, bytearray()

    def write(self, data: bytes) -> int:
        self.sent += data
        return int(self.file.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


def _message_types(stream: bytes) -> str:
    """The type byte of each frontend message in a stream (a type, then an Int32 length)."""
    types, at = [], 0
    while at < len(stream):
        types.append(chr(stream[at]))
        at += 1 + int.from_bytes(stream[at + 1 : at + 5], "big")
    return "".join(types)


def test_a_round_trip_asks_the_server_for_one_reply(sql: Conn) -> None:
    """No Flush between Bind, Execute and Sync: the server answers a round trip in one
    send, not one per message (pg8000's own calls add a Flush after Bind and Execute)."""

    def run() -> None:
        with UnitOfWork() as uow:
            uow.tx.execute("SELECT 1")
            uow.tx.execute_then_commit(INSERT_USER, id=uuid.uuid4(), email=f"{uuid.uuid4()}@example.com")

    run()  # prepares the statements on the pooled connection
    pool = get_pool()
    conn = pool.acquire()
    recording = _Recording(conn._sock)
    conn._sock = recording
    pool.release(conn)  # LIFO: the next transaction takes this connection
    try:
        run()
    finally:
        conn._sock = recording.file
    # BEGIN and SELECT 1 in one round trip; then the last INSERT with its Sync, and COMMIT.
    assert _message_types(bytes(recording.sent)) == "BEBES" + "BES" + "Q"
