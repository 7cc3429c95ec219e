"""The schema's own guarantees, at the database with raw SQL: no Python rule is involved."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pg8000.exceptions
import pg8000.native
import pytest

from local.migrate import discover, migrate
from local.paths import MIGRATIONS
from shared.db import connection as db
from shared.settings import Settings
from tests import helpers

Conn = pg8000.native.Connection
T0 = datetime(2027, 6, 1, 9, tzinfo=UTC)


def refused(conn: Conn, sql: str, **params: Any) -> dict[str, str]:
    """Runs `sql`, expects the database to refuse it; returns the error's fields."""
    with pytest.raises(pg8000.exceptions.DatabaseError) as caught:
        conn.run(sql, **params)
    info: dict[str, str] = caught.value.args[0]
    return info


def user(conn: Conn, role: str) -> uuid.UUID:
    ident = uuid.uuid4()
    conn.run(
        "INSERT INTO users (id, email, name, role) VALUES (:id, :email, 'Someone', CAST(:role AS user_role))",
        id=ident,
        email=f"{ident.hex}@example.com",
        role=role,
    )
    if role == "doctor":
        conn.run("INSERT INTO doctors_profiles (user_id, specialty, timezone) VALUES (:id, 'GP', 'UTC')", id=ident)
    if role == "patient":
        conn.run("INSERT INTO patients_profiles (user_id) VALUES (:id)", id=ident)
    return ident


def slot(conn: Conn, doctor: uuid.UUID, start: datetime, minutes: int = 30) -> uuid.UUID:
    rows = conn.run(
        "INSERT INTO slots (doctor_id, start_time, end_time) VALUES (:d, :s, :e) RETURNING id",
        d=doctor,
        s=start,
        e=start + timedelta(minutes=minutes),
    )
    return uuid.UUID(str(rows[0][0]))


INSERT_APPOINTMENT = """
INSERT INTO appointments (slot_id, patient_id, doctor_id, start_time, end_time, status)
SELECT s.id, :patient, s.doctor_id, s.start_time, s.end_time, CAST(:status AS appointment_status)
FROM slots AS s WHERE s.id = :slot
RETURNING id
"""


def appointment(conn: Conn, slot_id: uuid.UUID, patient: uuid.UUID, status: str = "BOOKED") -> uuid.UUID:
    return uuid.UUID(str(conn.run(INSERT_APPOINTMENT, slot=slot_id, patient=patient, status=status)[0][0]))


@pytest.fixture
def world(sql: Conn) -> dict[str, uuid.UUID]:
    doctor, other_doctor = user(sql, "doctor"), user(sql, "doctor")
    return {
        "doctor": doctor,
        "other_doctor": other_doctor,
        "patient": user(sql, "patient"),
        "other_patient": user(sql, "patient"),
        "slot": slot(sql, doctor, T0),
        "other_slot": slot(sql, other_doctor, T0 + timedelta(minutes=15)),
    }


def test_two_booked_appointments_for_one_slot_are_refused(sql: Conn, world: dict[str, uuid.UUID]) -> None:
    appointment(sql, world["slot"], world["patient"])
    error = refused(sql, INSERT_APPOINTMENT, slot=world["slot"], patient=world["other_patient"], status="BOOKED")
    assert (error["C"], error["n"]) == ("23505", "appointments_one_booked_per_slot")


def test_cancelled_appointments_beside_a_booked_one_are_allowed(sql: Conn, world: dict[str, uuid.UUID]) -> None:
    appointment(sql, world["slot"], world["patient"], "CANCELLED")
    appointment(sql, world["slot"], world["other_patient"], "CANCELLED")
    appointment(sql, world["slot"], world["other_patient"], "BOOKED")
    assert sql.run("SELECT count(*) FROM appointments WHERE slot_id = :s", s=world["slot"]) == [[3]]


def test_rebooking_a_slot_by_updating_a_cancelled_one_is_refused(sql: Conn, world: dict[str, uuid.UUID]) -> None:
    appointment(sql, world["slot"], world["patient"], "BOOKED")
    cancelled = appointment(sql, world["slot"], world["other_patient"], "CANCELLED")
    error = refused(sql, "UPDATE appointments SET status = 'BOOKED' WHERE id = :id", id=cancelled)
    assert error["n"] == "appointments_one_booked_per_slot"


@pytest.mark.parametrize(("offset", "minutes"), [(0, 30), (15, 30), (-15, 30), (10, 5), (-60, 120)])
def test_overlapping_slots_of_one_doctor_are_refused(
    sql: Conn, world: dict[str, uuid.UUID], offset: int, minutes: int
) -> None:
    error = refused(
        sql,
        "INSERT INTO slots (doctor_id, start_time, end_time) VALUES (:d, :s, :e)",
        d=world["doctor"],
        s=T0 + timedelta(minutes=offset),
        e=T0 + timedelta(minutes=offset + minutes),
    )
    assert error["C"] in ("23P01", "23505")
    if error["C"] == "23P01":
        assert error["n"] == "slots_no_overlap"


def test_adjacent_slots_and_other_doctors_overlapping_slots_are_allowed(sql: Conn, world: dict[str, uuid.UUID]) -> None:
    slot(sql, world["doctor"], T0 + timedelta(minutes=30))
    slot(sql, world["doctor"], T0 - timedelta(minutes=30))
    slot(sql, world["other_doctor"], T0 - timedelta(minutes=45))


def test_a_moved_slot_may_not_overlap_either(sql: Conn, world: dict[str, uuid.UUID]) -> None:
    later = slot(sql, world["doctor"], T0 + timedelta(hours=1))
    error = refused(
        sql,
        "UPDATE slots SET start_time = :s, end_time = :e WHERE id = :id",
        s=T0 + timedelta(minutes=20),
        e=T0 + timedelta(minutes=50),
        id=later,
    )
    assert error["n"] == "slots_no_overlap"


def test_invalid_slots_are_refused(sql: Conn, world: dict[str, uuid.UUID]) -> None:
    error = refused(
        sql,
        "INSERT INTO slots (doctor_id, start_time, end_time) VALUES (:d, :s, :s)",
        d=world["doctor"],
        s=T0 + timedelta(days=1),
    )
    assert error["n"] == "slots_positive_length"
    error = refused(
        sql,
        "INSERT INTO slots (doctor_id, start_time, end_time) VALUES (:d, :s, :e)",
        d=world["patient"],
        s=T0 + timedelta(days=1),
        e=T0 + timedelta(days=1, hours=1),
    )
    assert error["C"] == "23503"  # a patient has no doctor profile


def test_a_patients_overlapping_booked_appointments_are_refused(sql: Conn, world: dict[str, uuid.UUID]) -> None:
    appointment(sql, world["slot"], world["patient"])
    # Another doctor's slot, 15 minutes into the first: the same patient cannot hold both.
    error = refused(sql, INSERT_APPOINTMENT, slot=world["other_slot"], patient=world["patient"], status="BOOKED")
    assert (error["C"], error["n"]) == ("23P01", "appointments_patient_no_overlap")
    # Cancelled or for another patient, it is fine.
    appointment(sql, world["other_slot"], world["patient"], "CANCELLED")
    appointment(sql, world["other_slot"], world["other_patient"], "BOOKED")


def test_a_cancelled_appointment_cannot_be_revived_into_an_overlap(sql: Conn, world: dict[str, uuid.UUID]) -> None:
    appointment(sql, world["slot"], world["patient"])
    cancelled = appointment(sql, world["other_slot"], world["patient"], "CANCELLED")
    error = refused(sql, "UPDATE appointments SET status = 'BOOKED' WHERE id = :id", id=cancelled)
    assert error["n"] == "appointments_patient_no_overlap"


def test_an_appointment_must_copy_its_slot_faithfully(sql: Conn, world: dict[str, uuid.UUID]) -> None:
    error = refused(
        sql,
        """
        INSERT INTO appointments (slot_id, patient_id, doctor_id, start_time, end_time)
        VALUES (:slot, :patient, :doctor, :start, :end)""",
        slot=world["slot"],
        patient=world["patient"],
        doctor=world["other_doctor"],
        start=T0,
        end=T0 + timedelta(minutes=30),
    )
    assert (error["C"], error["n"]) == ("23503", "appointments_slot_fkey")
    error = refused(
        sql,
        """
        INSERT INTO appointments (slot_id, patient_id, doctor_id, start_time, end_time)
        VALUES (:slot, :patient, :doctor, :start, :end)""",
        slot=world["slot"],
        patient=world["patient"],
        doctor=world["doctor"],
        start=T0,
        end=T0 + timedelta(hours=8),
    )
    assert error["n"] == "appointments_slot_fkey"


# -- the audit trail is append-only ---------------------------------------------------------


@pytest.fixture
def audit_id(sql: Conn, world: dict[str, uuid.UUID]) -> int:
    booked = appointment(sql, world["slot"], world["patient"])
    rows = sql.run(
        """
        INSERT INTO audit_appointment (appointment_id, action, to_status, actor_id)
        VALUES (:a, 'BOOKED', 'BOOKED', :actor) RETURNING id""",
        a=booked,
        actor=world["patient"],
    )
    return int(rows[0][0])


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_appointment SET reason = 'rewritten' WHERE id = :id",
        "UPDATE audit_appointment SET to_status = 'CANCELLED'",
        "DELETE FROM audit_appointment WHERE id = :id",
        "DELETE FROM audit_appointment",
        "TRUNCATE audit_appointment",
        "TRUNCATE audit_appointment CASCADE",
        "TRUNCATE appointments CASCADE",  # the cascade reaches the audit trail, and is refused there
    ],
)
def test_the_audit_trail_cannot_be_changed(sql: Conn, audit_id: int, statement: str) -> None:
    params = {"id": audit_id} if ":id" in statement else {}
    error = refused(sql, statement, **params)
    assert error["C"] == "42501"
    assert "append-only" in error["M"]
    assert sql.run("SELECT id, reason, to_status FROM audit_appointment") == [[audit_id, None, "BOOKED"]]


def test_an_audited_appointment_cannot_be_deleted(sql: Conn, audit_id: int) -> None:
    error = refused(sql, "DELETE FROM appointments")
    assert error["C"] == "23503"


# -- indexes -------------------------------------------------------------------------------


FOREIGN_KEYS_WITHOUT_INDEX = """
SELECT c.conrelid::regclass::text AS tbl, c.conname,
       array_agg(a.attname ORDER BY k.ord) AS columns
FROM pg_constraint AS c
CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k (attnum, ord)
JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
WHERE c.contype = 'f'
  AND c.connamespace = 'public'::regnamespace
  AND NOT EXISTS (
      SELECT 1 FROM pg_index AS i
      WHERE i.indrelid = c.conrelid
        AND i.indisvalid
        AND i.indpred IS NULL
        -- the foreign key's columns lead the index, in any order
        AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(c.conkey)] @> c.conkey
        AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(c.conkey)] <@ c.conkey
  )
GROUP BY c.conrelid, c.conname
"""


def test_every_foreign_key_column_has_an_index(sql: Conn) -> None:
    keys = sql.run("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace")
    assert keys[0][0] >= 10
    assert sql.run(FOREIGN_KEYS_WITHOUT_INDEX) == []


def test_the_index_check_can_fail(sql: Conn) -> None:
    sql.run("CREATE TABLE probe (id int PRIMARY KEY, user_id uuid REFERENCES users (id))")
    assert [row[1] for row in sql.run(FOREIGN_KEYS_WITHOUT_INDEX)] == ["probe_user_id_fkey"]


def test_every_index_is_valid(sql: Conn) -> None:
    # CONCURRENTLY builds that failed leave invalid indexes behind.
    assert sql.run("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid") == []


# -- the migration runner ------------------------------------------------------------------


SCHEMA = """
SELECT 'column', table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
       || ' ' || coalesce(column_default, '')
FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index', indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger', tgrelid::regclass::text || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'type', typname FROM pg_type WHERE typnamespace = 'public'::regnamespace AND typtype = 'e'
ORDER BY 1, 2
"""


def test_migrating_twice_applies_nothing_and_changes_nothing(sql: Conn, database_url: str) -> None:
    before = sql.run(SCHEMA)
    recorded = sql.run("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    assert migrate(Settings(database_url=database_url)) == []
    assert sql.run(SCHEMA) == before
    assert sql.run("SELECT version, name, checksum FROM schema_migrations ORDER BY version") == recorded


def test_the_runner_records_each_file_with_its_checksum(sql: Conn) -> None:
    recorded = {row[0]: (row[1], row[2]) for row in sql.run("SELECT version, name, checksum FROM schema_migrations")}
    files = discover()
    assert len(files) >= 2
    assert recorded == {m.version: (m.path.name, m.checksum) for m in files}
    assert all(len(checksum) == 64 for _, checksum in recorded.values())


def test_a_fresh_database_gets_every_file(pg_server: helpers.TestServer) -> None:
    bare = f"bare_{uuid.uuid4().hex[:10]}"
    admin = helpers.connect_native(pg_server.admin_url)
    try:
        admin.run(f'CREATE DATABASE "{bare}"')
    finally:
        admin.close()
    try:
        url = pg_server.url(bare)
        applied = migrate(Settings(database_url=url))
        assert applied == [m.path.name for m in discover()]
        assert migrate(Settings(database_url=url)) == []
    finally:
        pg_server.drop(bare)


def test_a_changed_applied_file_is_refused(sql: Conn, database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    before = sql.run(SCHEMA)
    with pytest.raises(RuntimeError, match="changed after it was applied"):
        migrate(Settings(database_url=database_url), folder=folder)
    assert sql.run(SCHEMA) == before


def test_a_new_file_is_applied_once(sql: Conn, database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    (folder / "9999_probe.sql").write_text("CREATE TABLE probe_migration (id int PRIMARY KEY);\n")
    assert migrate(Settings(database_url=database_url), folder=folder) == ["9999_probe.sql"]
    assert migrate(Settings(database_url=database_url), folder=folder) == []
    assert sql.run("SELECT count(*) FROM schema_migrations WHERE version = '9999'") == [[1]]


def test_a_failing_file_leaves_nothing_behind(sql: Conn, database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    (folder / "9998_broken.sql").write_text("CREATE TABLE half_done (id int);\nSELECT 1/0;\n")
    with pytest.raises(pg8000.exceptions.DatabaseError):
        migrate(Settings(database_url=database_url), folder=folder)
    assert sql.run("SELECT to_regclass('half_done')") == [[None]]
    assert sql.run("SELECT count(*) FROM schema_migrations WHERE version = '9998'") == [[0]]


def test_an_index_left_invalid_by_a_failed_build_is_built_again(sql: Conn, database_url: str, tmp_path: Path) -> None:
    """CREATE INDEX CONCURRENTLY that fails leaves an INVALID index; IF NOT EXISTS alone
    would skip it on the re-run and record the file as done."""
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    settings = Settings(database_url=database_url)
    (folder / "9996_probe_table.sql").write_text("CREATE TABLE probe_dupes (x int NOT NULL);\n")
    assert migrate(settings, folder=folder) == ["9996_probe_table.sql"]
    sql.run("INSERT INTO probe_dupes (x) VALUES (1), (1)")
    (folder / "9997_probe_index.sql").write_text(
        "SET lock_timeout = '5s';\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS probe_dupes_x ON probe_dupes (x);\n"
    )
    with pytest.raises(pg8000.exceptions.DatabaseError):  # the duplicate fails the build
        migrate(settings, folder=folder)
    valid = (
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'probe_dupes_x'"
    )
    assert sql.run(valid) == [[False]]
    assert sql.run("SELECT count(*) FROM schema_migrations WHERE version = '9997'") == [[0]]
    sql.run("DELETE FROM probe_dupes")
    assert migrate(settings, folder=folder) == ["9997_probe_index.sql"]
    assert sql.run(valid) == [[True]]


def test_a_file_may_run_longer_than_an_api_statement(
    sql: Conn, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index build sets its own statement_timeout (minutes); the connection's socket,
    which gives up shortly after the API's statement timeout, must not cut it off."""
    monkeypatch.setattr(db, "SOCKET_MARGIN_S", 0.0)
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    (folder / "9995_slow.sql").write_text("SET statement_timeout = '60s';\nSELECT pg_sleep(1.5);\n")
    settings = Settings(database_url=database_url, db_statement_timeout_ms=500)
    assert migrate(settings, folder=folder) == ["9995_slow.sql"]
