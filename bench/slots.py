"""Free-slot listing on a big clinic: 5 million slots, 2 million appointments.

The data is made once with set-based SQL (INSERT ... SELECT generate_series) in a
PostgreSQL of its own under .local/bench-slots/ and kept: a rerun checks the counts
and goes straight to measuring. 1,000 doctors each have 5,000 consecutive
30-minute slots, from 30 days ago to about 74 days ahead (no two slots of a doctor
overlap, so the exclusion constraint holds); 40% of the slots are booked, a tenth
of those cancelled again, by 100,000 patients who never hold two appointments at
one time.

Measured: shared/sql/doctors.sql `list_free_slots`, exactly as the slots function
runs it (the same prepared statement through shared.db), for random doctors and
random ranges of 1 to 31 days within the next 60: the time the database spends
(EXPLAIN ANALYZE's planning + execution), the time the Python client sees (with
pg8000 reading up to 501 rows), and, through HTTP, GET /doctors/{id}/slots on the
slots function. The plan must be index-only, with no sequential scan.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from bench.common import PORTS, SLOTS_PG_PORT, Figures, Timer, bench_dir, connect, load_average, migrate, server
from shared.db.sqlfiles import queries

DATABASE = "clinic_bench_slots"
DOCTORS = 1_000
SLOTS_PER_DOCTOR = 5_000
PATIENTS = 100_000
SLOTS = DOCTORS * SLOTS_PER_DOCTOR
# Every slot whose (doctor + slot) mod 5 is 0 or 1 is booked: 2,000,000 appointments.
APPOINTMENTS = SLOTS * 2 // 5
SLOT_MINUTES = 30
DAYS_BACK = 30
DOCTOR_SQL = queries("doctors")


def _grid_start() -> datetime:
    """Day 0 of the grid, fixed when the data is made (kept in bench_meta)."""
    return (datetime.now(UTC) - timedelta(days=DAYS_BACK)).replace(hour=0, minute=0, second=0, microsecond=0)


def build(url: str) -> None:
    """Makes the data; 1,000 doctors in chunks so progress shows.

    Resumable at the appointments: slots made by an interrupted run are kept (the
    grid's day 0 is read back from them).
    """
    conn = connect(url)
    timer = Timer()
    try:
        conn.run("SET synchronous_commit = off")
        conn.run("SET maintenance_work_mem = '512MB'")
        if int(conn.run("SELECT count(*) FROM slots")[0][0]) == 0:
            _people_and_slots(conn, timer)
        _appointments(conn, timer)
    finally:
        conn.close()


def _people_and_slots(conn: Any, timer: Timer) -> None:
    base = _grid_start()
    conn.run(
        """
        INSERT INTO users (id, email, name, role)
        SELECT md5('slots-doctor-' || d)::uuid, 'slots-doctor-' || d || '@bench.example', 'Dr. Slots ' || d,
               'doctor'
        FROM generate_series(0, :n - 1) AS d""",
        n=DOCTORS,
    )
    conn.run(
        """
        INSERT INTO doctors_profiles (user_id, specialty, timezone)
        SELECT md5('slots-doctor-' || d)::uuid, 'Specialty ' || (d % 20), 'UTC'
        FROM generate_series(0, :n - 1) AS d""",
        n=DOCTORS,
    )
    conn.run(
        """
        INSERT INTO users (id, email, name, role)
        SELECT md5('slots-patient-' || p)::uuid, 'slots-patient-' || p || '@bench.example',
               'Patient ' || p, 'patient'
        FROM generate_series(0, :n - 1) AS p""",
        n=PATIENTS,
    )
    conn.run(
        """
        INSERT INTO patients_profiles (user_id)
        SELECT md5('slots-patient-' || p)::uuid FROM generate_series(0, :n - 1) AS p""",
        n=PATIENTS,
    )
    print(f"  users and profiles: {timer}", flush=True)
    chunk = 100
    for first in range(0, DOCTORS, chunk):
        conn.run(
            """
            INSERT INTO slots (doctor_id, start_time, end_time)
            SELECT md5('slots-doctor-' || d)::uuid,
                   CAST(:base AS timestamptz) + k * interval '30 minutes',
                   CAST(:base AS timestamptz) + (k + 1) * interval '30 minutes'
            FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS d, generate_series(0, :k - 1) AS k""",
            base=base,
            first=first,
            last=first + chunk - 1,
            k=SLOTS_PER_DOCTOR,
        )
        print(f"  slots of doctors {first}-{first + chunk - 1}: {timer}", flush=True)


def _appointments(conn: Any, timer: Timer) -> None:
    base = conn.run("SELECT min(start_time) FROM slots")[0][0]
    conn.run("DELETE FROM appointments")  # what an interrupted run left (nothing else refers to them)
    chunk = 100
    # The appointments' foreign keys hold by construction (they are made from the
    # slots just written); replica mode skips the per-row checks so this takes
    # minutes, not an hour. Unique indexes and exclusion constraints still apply.
    conn.run("SET session_replication_role = replica")
    for first in range(0, DOCTORS, chunk):
        # Patient (k * 1000 + d) mod 100,000: slots at one time k all go to different
        # patients, so no patient holds two appointments that overlap.
        conn.run(
            """
            INSERT INTO appointments (slot_id, patient_id, doctor_id, start_time, end_time, status,
                                      created_at, updated_at)
            SELECT s.id, md5('slots-patient-' || ((k.k * 1000 + g.d) % :patients))::uuid,
                   s.doctor_id, s.start_time, s.end_time,
                   CAST(CASE WHEN (k.k / 5) % 10 = 0 THEN 'CANCELLED' ELSE 'BOOKED' END AS appointment_status),
                   s.start_time - interval '7 days', s.start_time - interval '7 days'
            FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS g (d)
            CROSS JOIN LATERAL generate_series(0, :k - 1) AS k (k)
            JOIN slots AS s ON s.doctor_id = md5('slots-doctor-' || g.d)::uuid
                           AND s.start_time = CAST(:base AS timestamptz) + k.k * interval '30 minutes'
            WHERE (g.d + k.k) % 5 < 2""",
            patients=PATIENTS,
            base=base,
            first=first,
            last=first + chunk - 1,
            k=SLOTS_PER_DOCTOR,
        )
        print(f"  appointments of doctors {first}-{first + chunk - 1}: {timer}", flush=True)
    conn.run("SET session_replication_role = origin")
    # Index-only scans need the visibility map: VACUUM marks the pages all-visible.
    conn.run("VACUUM (ANALYZE) slots")
    conn.run("VACUUM (ANALYZE) appointments")
    conn.run("VACUUM (ANALYZE) users")
    conn.run("VACUUM (ANALYZE) doctors_profiles")
    conn.run("CREATE TABLE bench_meta (grid_start timestamptz, slots bigint, appointments bigint)")
    conn.run("INSERT INTO bench_meta VALUES (:b, :s, :a)", b=base, s=SLOTS, a=APPOINTMENTS)
    print(f"  vacuumed and analyzed: {timer}", flush=True)


def _slot_count(url: str) -> int:
    conn = connect(url)
    try:
        if not conn.run("SELECT 1 FROM pg_tables WHERE tablename = 'slots'"):
            return 0
        return int(conn.run("SELECT count(*) FROM slots")[0][0])
    finally:
        conn.close()


def ready(url: str) -> bool:
    """The kept database is complete: its meta row and the real counts match."""
    conn = connect(url)
    try:
        if not conn.run("SELECT 1 FROM pg_tables WHERE tablename = 'bench_meta'"):
            return False
        meta = conn.run("SELECT slots, appointments FROM bench_meta")
        counts = conn.run("SELECT (SELECT count(*) FROM slots), (SELECT count(*) FROM appointments)")
    finally:
        conn.close()
    return bool(meta) and [int(v) for v in meta[0]] == [SLOTS, APPOINTMENTS] == [int(v) for v in counts[0]]


# -- measuring ------------------------------------------------------------------------------


def samples(count: int, seed: int) -> list[tuple[str, date, date]]:
    """Random doctors and ranges of 1-31 days starting within the next 60 days."""
    rng = random.Random(seed)
    today = datetime.now(UTC).date()
    picked = []
    for _ in range(count):
        doctor = rng.randrange(DOCTORS)
        start = today + timedelta(days=rng.randrange(60))
        picked.append((_doctor_id(doctor), start, start + timedelta(days=rng.randrange(31))))
    return picked


def _doctor_id(n: int) -> str:
    import hashlib
    import uuid

    return str(uuid.UUID(hashlib.md5(f"slots-doctor-{n}".encode()).hexdigest()))  # noqa: S324 - an id, not a secret


def _params(doctor: str, first: date, last: date) -> dict[str, Any]:
    """What shared.doctors.list_free_slots passes (UTC doctors; the default page of 500)."""
    return {
        "doctor_id": doctor,
        "range_start": datetime.combine(first, datetime.min.time(), tzinfo=UTC),
        "range_end": datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC),
        "after": None,
        "limit": 501,
    }


def at_database(url: str, picked: list[tuple[str, date, date]]) -> tuple[Figures, Figures, int]:
    """(server-side time, client round trip, rows) of list_free_slots as the service runs it."""
    import pg8000.native

    from shared.db.connection import Pool, connect
    from shared.settings import Settings
    from shared.unit_of_work import Transaction

    conn = connect(Settings(database_url=url))
    # One connection for both: the service's path (a Transaction, which begins a read-only
    # transaction with its first statement) and EXPLAIN beside it.
    tx = Transaction(Pool(lambda: conn, 1))
    sql = DOCTOR_SQL.list_free_slots
    statement, make_vals = pg8000.native.to_statement(sql)
    explain = f"EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON, FORMAT JSON) {statement}"
    client: list[float] = []
    server_side: list[float] = []
    rows = 0
    try:
        for doctor, first, last in picked[:50]:  # warm the cache and the prepared statement
            tx.all(sql, **_params(doctor, first, last))
        for doctor, first, last in picked:
            params = _params(doctor, first, last)
            began = time.perf_counter()
            found = tx.all(sql, **params)
            client.append((time.perf_counter() - began) * 1000)
            rows += len(found)
            # The same statement and values, timed by the server itself.
            context = conn.execute_unnamed(explain, vals=make_vals(params))
            plan = context.rows[0][0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            server_side.append(float(plan[0]["Planning Time"]) + float(plan[0]["Execution Time"]))
    finally:
        conn.close()
    client.sort()
    server_side.sort()
    total = sum(server_side) / 1000
    return (
        Figures(
            "list_free_slots at the database",
            len(picked),
            total,
            server_side,
            note="EXPLAIN ANALYZE planning + execution time; rate = 1 client back to back",
        ),
        Figures(
            "list_free_slots, Python client",
            len(picked),
            sum(client) / 1000,
            client,
            note="prepared statement through shared.db, pg8000 reading the rows",
        ),
        rows,
    )


def show_plan(url: str, doctor: str, first: date, last: date) -> tuple[str, bool]:
    """EXPLAIN (ANALYZE, BUFFERS) of one 31-day listing; True when index-only, no seq scan."""
    import pg8000.native

    conn = connect(url)
    try:
        statement, make_vals = pg8000.native.to_statement(DOCTOR_SQL.list_free_slots)
        # Literals, so the printed plan shows the values (the service's plan is the same shape).
        values = make_vals(_params(doctor, first, last))
        literal = statement
        for index in range(len(values), 0, -1):
            value = values[index - 1]
            literal = literal.replace(f"${index}", "NULL" if value is None else f"'{value}'")
        text = "\n".join(r[0] for r in conn.run(f"EXPLAIN (ANALYZE, BUFFERS) {literal}"))
    finally:
        conn.close()
    scans = [line.strip() for line in text.splitlines() if "Scan" in line]
    ok = (
        not any("Seq Scan" in s for s in scans)
        and any("Index Only Scan" in s and " on slots" in s for s in scans)
        and any("Index Only Scan" in s and " on appointments" in s for s in scans)
    )
    return text, ok


def over_http(url: str, picked: list[tuple[str, date, date]], clients: int) -> Figures:
    """GET /doctors/{id}/slots on the slots function, `clients` keep-alive connections."""
    from bench.httpload import run_load
    from local.stack import Stack

    stack = Stack(
        state=bench_dir("bench-slots/stack"),
        ports=PORTS,
        database_url=url,
        workers=2,
        threads=8,
        seed=False,
        extensions=[],
        functions=("slots",),
    )
    port = PORTS.slots

    def make(item: object) -> bytes:
        doctor, first, last = cast(tuple[str, date, date], item)
        return (
            f"GET /doctors/{doctor}/slots?from={first}&to={last} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        ).encode()

    stack.start()
    try:
        result = run_load(
            "127.0.0.1", port, picked * 20, make, connections=clients, procs=1, warmup=2, duration=10, expect=200
        )
    finally:
        stack.stop()
    return Figures(
        f"GET /doctors/{{id}}/slots, {clients} clients",
        result.ok,
        10.0,
        result.latencies_ms,
        result.errors,
        note="slots function (2 workers x 8 threads), up to 500 slots a page",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench slots", description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--http-clients", type=int, default=4, help="0 skips the HTTP measurement")
    parser.add_argument("--rebuild", action="store_true", help="make the data again")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args([] if argv is None else argv)
    print(f"slots benchmark: {load_average()}", flush=True)
    with server("bench-slots", SLOTS_PG_PORT) as pg:
        url = pg.url(DATABASE)
        if args.rebuild or not pg.exists(DATABASE) or not ready(url):
            timer = Timer()
            print(
                f"making {SLOTS:,} slots and {APPOINTMENTS:,} appointments (once; kept in .local/bench-slots/)",
                flush=True,
            )
            if args.rebuild or not pg.exists(DATABASE) or _slot_count(url) != SLOTS:
                url = pg.recreate(DATABASE)
            migrate(url)
            build(url)
            print(f"made in {timer}", flush=True)
        else:
            migrate(url)  # a migration added since the data was made (an index, say) applies here
            print(f"reusing {DATABASE}: {SLOTS:,} slots, {APPOINTMENTS:,} appointments", flush=True)
        picked = samples(args.queries, args.seed)
        server_side, client, rows = at_database(url, picked)
        plan, index_only = show_plan(url, picked[0][0], picked[0][1], picked[0][1] + timedelta(days=30))
        results = [server_side, client]
        if args.http_clients > 0:
            results.append(over_http(url, picked, args.http_clients))
    print(
        f"\n{args.queries} queries, random doctors of {DOCTORS:,}, ranges of 1-31 days: "
        f"{rows / len(picked):.0f} free slots returned on average"
    )
    print("\n".join(f.line() for f in results))
    verdict = "meets" if server_side.p(0.99) < 10 else "MISSES"
    print(f"p99 at the database {server_side.p(0.99):.2f} ms ({verdict} the target < 10 ms)")
    print(f"\nplan of a 31-day listing ({'index-only, no sequential scan' if index_only else 'NOT index-only'}):")
    print(plan)
    print(f"\n{load_average()}")
    sys.stdout.flush()
    return 0 if index_only else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
