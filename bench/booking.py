"""Bookings per second: the database's limit, the book function, and the gateway.

One run, one database, four phases, every booking on a slot of its own:

  (a) pgbench runs the booking transaction itself (the statements the service
      issues, written out in PGBENCH_STEPS) with 32 clients: the physical limit;
  (b) 32 keep-alive HTTP clients POST /appointments straight to the book
      function, with the identity header the gateway would add;
  (c) the same through the local gateway with a Bearer token;
  (r) the same requests to a function that does nothing, under the same runtime:
      what the runtime (uvicorn, Starlette, functions-framework, the hop to a
      request thread: shared/asgi.py) costs before our code runs.

The database is checkpointed and vacuumed before each phase, so no phase pays
for the writes of the one before.

Patient i only ever books doctor i, one slot after another, so no booking
overlaps another of the same patient and every request should be a 201.
Slots are handed out in time order across all doctors, so concurrent bookings
hit different doctors, as real traffic does.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import resource
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pg8000.native

from bench.common import (
    BOOKING_PG_PORT,
    PORTS,
    Figures,
    Timer,
    bench_dir,
    connect,
    load_average,
    migrate,
    server,
)
from bench.cpu import CpuMeter, describe
from bench.httpload import run_load
from local.postgres import bin_path
from shared import outbox
from shared.db import queries

DATABASE = "clinic_bench_booking"
ISSUER = "https://clinic.local/issuer"

APPOINTMENTS = queries("appointments")
USERS = queries("users")
OUTBOX = queries("outbox")


# -- the booking transaction as a pgbench script -------------------------------------------

# Each step is the service's own named SQL (shared/sql) with its parameters bound to
# pgbench variables (a bare name) or to an SQL expression; `gset` keeps the returned
# row in variables with that prefix, as the service keeps the returned row in Python.
# Keep this list in step with shared.appointments.book: it is what (a) measures.
Step = tuple[str, dict[str, str], str | None]
# Each benchmark patient books dozens of slots: the cap (MAX_UPCOMING_APPOINTMENTS), still
# counted on every booking, is set above that in every phase.
BENCH_MAX_UPCOMING = 1_000_000
# Likewise their changes of the hour (MAX_CHANGES_PER_HOUR): counted on every booking.
BENCH_MAX_CHANGES = 1_000_000

PGBENCH_STEPS: list[Step] = [
    ("BEGIN", {}, None),
    (
        APPOINTMENTS.book_appointment,
        {
            "caller_id": "patient_id",
            "email": "email",
            "name": "name",
            "role": "'patient'",
            "own_profile": "TRUE",
            "patient_id": "patient_id",
            "slot_id": "slot_id",
            "reason": "NULL",
            "max_upcoming": str(BENCH_MAX_UPCOMING),
            "limited_actor": "patient_id",
            "max_changes": str(BENCH_MAX_CHANGES),
        },
        "a_",
    ),
    # The outbox rows record_change writes for a booking (confirmation, 24h reminder,
    # event), made in Python by _outbox_rows with this booking's id put in by replace().
    # The service sends them with the COMMIT, in one round trip (Tx.later): so does this.
    # (It also sends BEGIN with book_appointment; pgbench cannot, as \gset does not work
    # in a pipeline, so (a) makes one round trip more than the service.)
    ("\\startpipeline", {}, None),
    (
        OUTBOX.insert_outbox_rows,
        {
            "appointment_id": "a_id",
            "rows": "replace(:outbox_rows, '@ID@', CAST(:a_id AS text))",
        },
        None,
    ),
    ("COMMIT", {}, None),
    ("\\endpipeline", {}, None),
]

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def _bind(sql: str, binding: dict[str, str]) -> str:
    """The statement with each :param replaced by its pgbench variable or expression."""
    if not binding:
        return sql
    statement, make_vals = pg8000.native.to_statement(sql)
    order: list[str] = []

    class _Recorder(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            order.append(key)
            return None

    make_vals(_Recorder())
    missing = set(order) - set(binding)
    if missing:
        raise KeyError(f"no pgbench binding for {sorted(missing)} in: {sql[:60]}")

    def value(match: re.Match[str]) -> str:
        bound = binding[order[int(match.group(1)) - 1]]
        # A lower-case name is a pgbench variable; anything else (NULL, 'text', now()) is SQL.
        return f":{bound}" if _IDENTIFIER.match(bound) else bound

    return re.sub(r"\$(\d+)", value, statement)


def pgbench_script() -> str:
    lines = [
        "-- The booking transaction of shared.appointments.book, generated by bench/booking.py.",
        "-- The prelude takes the next unused slot; it is not part of the service's work.",
        "SELECT b.slot_id, b.patient_id, b.email, b.name, p.outbox_rows",
        "FROM bench_slots AS b, bench_payload AS p WHERE b.n = (SELECT nextval('bench_next')) \\gset",
    ]
    for sql, binding, gset in PGBENCH_STEPS:
        if sql.startswith("\\"):  # a pgbench meta-command
            lines.append(sql)
            continue
        statement = " ".join(line.split("--")[0].strip() for line in _bind(sql, binding).splitlines())
        statement = " ".join(statement.split())
        lines.append(f"{statement} \\gset {gset}" if gset else f"{statement};")
    return "\n".join(lines) + "\n"


# -- the data ---------------------------------------------------------------------------------


@dataclass
class Data:
    url: str
    doctors: int
    slots_per_doctor: int

    @property
    def total(self) -> int:
        return self.doctors * self.slots_per_doctor


def build(url: str, doctors: int, slots_per_doctor: int, patients_per_doctor: int) -> Data:
    """Doctors, patients and consecutive 30-minute slots from two days ahead, set-based.

    Doctor d's slot k goes to patient (d, k mod M): a patient only ever books one
    doctor, one slot after another, so no two of their bookings overlap, and holds a
    few dozen appointments at most, as real patients hold a handful (a patient with
    thousands would make every booking's overlap check, a GiST search, look dearer).
    """
    base = (datetime.now(UTC) + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    patients = doctors * patients_per_doctor
    conn = connect(url)
    try:
        conn.run("SET synchronous_commit = off")  # the build is not what is measured
        conn.run(
            """
            INSERT INTO users (id, email, name, role)
            SELECT md5('bench-doctor-' || i)::uuid, 'bench-doctor-' || i || '@bench.example',
                   'Dr. Bench ' || i, 'doctor'
            FROM generate_series(1, :n) AS i""",
            n=doctors,
        )
        conn.run(
            """
            INSERT INTO doctors_profiles (user_id, specialty, timezone)
            SELECT md5('bench-doctor-' || i)::uuid, 'Benchmarking', 'UTC'
            FROM generate_series(1, :n) AS i""",
            n=doctors,
        )
        conn.run(
            """
            INSERT INTO users (id, email, name, role)
            SELECT md5('bench-patient-' || i)::uuid, 'bench-patient-' || i || '@bench.example',
                   'Bench Patient ' || i, 'patient'
            FROM generate_series(1, :n) AS i""",
            n=patients,
        )
        conn.run(
            """
            INSERT INTO patients_profiles (user_id)
            SELECT md5('bench-patient-' || i)::uuid FROM generate_series(1, :n) AS i""",
            n=patients,
        )
        # Two days ahead: every booking also writes its 24h reminder, as most real ones do.
        conn.run(
            """
            INSERT INTO slots (doctor_id, start_time, end_time)
            SELECT md5('bench-doctor-' || d)::uuid,
                   CAST(:base AS timestamptz) + k * interval '30 minutes',
                   CAST(:base AS timestamptz) + (k + 1) * interval '30 minutes'
            FROM generate_series(1, :d) AS d, generate_series(0, :k - 1) AS k""",
            base=base,
            d=doctors,
            k=slots_per_doctor,
        )
        # Slot n of the run, in time order across doctors, with the patient who books it.
        conn.run(
            """
            CREATE TABLE bench_slots AS
            SELECT row_number() OVER (ORDER BY k, d) AS n, s.id AS slot_id, p.id AS patient_id, p.email, p.name
            FROM generate_series(1, :d) AS d
            CROSS JOIN generate_series(0, :k - 1) AS k
            JOIN slots AS s ON s.doctor_id = md5('bench-doctor-' || d)::uuid
                           AND s.start_time = CAST(:base AS timestamptz) + k * interval '30 minutes'
            JOIN users AS p ON p.id = md5('bench-patient-' || ((d - 1) * :m + k % :m + 1))::uuid""",
            base=base,
            d=doctors,
            k=slots_per_doctor,
            m=patients_per_doctor,
        )
        conn.run("ALTER TABLE bench_slots ADD PRIMARY KEY (n)")
        conn.run("CREATE SEQUENCE bench_next")
        conn.run("CREATE TABLE bench_payload (outbox_rows text)")
        conn.run("INSERT INTO bench_payload VALUES (:rows)", rows=_outbox_rows())
        conn.run("VACUUM ANALYZE")
    finally:
        conn.close()
    return Data(url, doctors, slots_per_doctor)


def _outbox_rows() -> str:
    """What shared.outbox.record_change writes for a booking, as the JSON its statement takes.

    The appointment id is the placeholder @ID@ (pgbench cannot build JSON per row;
    its script puts each booking's id in with replace()).
    """
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    row = {
        "id": "@ID@",
        "slot_id": uuid.uuid4(),
        "doctor_id": uuid.uuid4(),
        "patient_id": uuid.uuid4(),
        "start_time": start,
        "end_time": start + timedelta(minutes=30),
        "status": "BOOKED",
        "reason": None,
    }
    now = datetime.now(UTC)
    audit_id = 1234567
    confirmation = outbox.task_name(row["id"], "CONFIRMATION", start, audit_id)
    reminder = outbox.task_name(row["id"], "REMINDER", start, 86400)
    view = outbox.appointment_json(row)
    event = {
        "type": "appointment.booked",
        "appointment": view,
        "audit_id": audit_id,
        "occurred_at": now.isoformat(),
    }
    return json.dumps(
        [
            {
                "target": "TASK",
                "name": confirmation,
                "payload": outbox._task_payload(view, "CONFIRMATION", confirmation),
                "deliver_at": now.isoformat(),
            },
            {
                "target": "TASK",
                "name": reminder,
                "payload": outbox._task_payload(view, "REMINDER", reminder),
                "deliver_at": (start - timedelta(days=1)).isoformat(),
            },
            {"target": "EVENT", "name": f"@ID@-{audit_id}", "payload": event, "deliver_at": now.isoformat()},
        ]
    )


def take(url: str, count: int) -> list[tuple[str, str, str, str]]:
    """The next `count` unused slots (and their patients); moves the shared cursor past them."""
    conn = connect(url)
    try:
        start = int(conn.run("SELECT nextval('bench_next')")[0][0])
        rows = conn.run(
            "SELECT slot_id, patient_id, email, name FROM bench_slots WHERE n >= :a AND n < :b ORDER BY n",
            a=start,
            b=start + count,
        )
        conn.run("SELECT setval('bench_next', :v)", v=start + count)
    finally:
        conn.close()
    return [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]


def settle(url: str) -> None:
    """Leaves no phase to pay for the one before: its dirty pages written out and its
    rows vacuumed now, not by the checkpointer and autovacuum during the next phase."""
    conn = connect(url)
    try:
        conn.run("CHECKPOINT")
        conn.run("VACUUM (ANALYZE) appointments, audit_appointment, outbox, users, patients_profiles")
    finally:
        conn.close()


def remaining(url: str) -> int:
    conn = connect(url)
    try:
        used = int(conn.run("SELECT last_value FROM bench_next")[0][0])
        total = int(conn.run("SELECT count(*) FROM bench_slots")[0][0])
    finally:
        conn.close()
    return total - used


# -- (a) pgbench ----------------------------------------------------------------------------


def run_pgbench(url: str, clients: int, warmup: float, duration: float, mode: str, meter: CpuMeter) -> Figures:
    from urllib.parse import urlparse

    folder = bench_dir("bench/pgbench")
    for old in folder.glob("pgbench_log*"):
        old.unlink()
    script = folder / "booking.sql"
    script.write_text(pgbench_script())
    parts = urlparse(url)
    base = [
        str(bin_path("pgbench")),
        "-n",
        "-M",
        mode,
        "-c",
        str(clients),
        "-j",
        "2",
        "-f",
        str(script),
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 5432),
        "-U",
        parts.username or "postgres",
        (parts.path or "/postgres").lstrip("/"),
    ]
    env = {**os.environ, "PGPASSWORD": parts.password or ""}
    if warmup > 0:
        subprocess.run(
            [*base[:1], "-T", str(max(1, round(warmup))), *base[1:]],
            cwd=folder,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    meter.start()
    done = subprocess.run(
        [*base[:1], "-T", str(round(duration)), "-l", "--log-prefix", "pgbench_log", *base[1:]],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = meter.stop({"pgbench": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime})
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{done.stdout}\n{done.stderr}")
    latencies: list[float] = []
    failed = 0
    for log in folder.glob("pgbench_log*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(int(fields[2]) / 1000)
            else:
                failed += 1
    latencies.sort()
    processed = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    count = int(processed.group(1)) if processed else len(latencies)
    seconds = count / float(tps.group(1)) if tps and float(tps.group(1)) > 0 else duration
    name = f"(a) pgbench, {clients} clients, -M {mode}"
    return Figures(name, count, seconds, latencies, failed, describe(spent, count + failed))


# -- (b) and (c) over HTTP ------------------------------------------------------------------


def _userinfo(patient_id: str, email: str, name: str) -> str:
    """X-Apigateway-Api-Userinfo as the gateway sends it: base64url JSON claims, no padding."""
    claims = {"iss": ISSUER, "sub": patient_id, "email": email, "email_verified": True, "name": name, "role": "patient"}
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")


def _request(port: int, header: str) -> Any:
    prefix = (f"POST /appointments HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n").encode()

    def make(item: object) -> bytes:
        slot_id, identity = cast(tuple[str, str], item)
        body = f'{{"slot_id": "{slot_id}"}}'.encode()
        return prefix + f"Content-Length: {len(body)}\r\n{header}: {identity}\r\n\r\n".encode() + body

    return make


def run_http(
    name: str,
    url: str,
    port: int,
    header: str,
    identities: dict[str, str],
    clients: int,
    procs: int,
    warmup: float,
    duration: float,
    expected_rate: float,
    meter: CpuMeter,
) -> Figures:
    slots = take(url, int(expected_rate * (warmup + duration) * 1.5) + clients * 10)
    items = [(slot[0], identities[slot[1]]) for slot in slots]
    return measure(name, port, header, items, clients, procs, warmup, duration, meter)


def measure(
    name: str,
    port: int,
    header: str,
    items: list[tuple[str, str]],
    clients: int,
    procs: int,
    warmup: float,
    duration: float,
    meter: CpuMeter,
) -> Figures:
    """POST /appointments once per (slot id, identity) item, for warmup + duration seconds."""
    meter.start()
    result = run_load(
        "127.0.0.1",
        port,
        items,
        _request(port, header),
        connections=clients,
        procs=procs,
        warmup=warmup,
        duration=duration,
        expect=201,
    )
    note = describe(meter.stop({"client": result.cpu_seconds}), result.sent)
    if result.sent >= len(items):
        note += "; RAN OUT OF PREPARED REQUESTS, raise --expected-rate"
    return Figures(name, result.ok, duration, result.latencies_ms, result.errors, note)


def run_runtime_floor(args: argparse.Namespace) -> Figures:
    """(r): the same requests to a function that does nothing, under the same runtime."""
    from local.postgres import port_open
    from local.stack import stop_process

    port = PORTS.gateway + 20
    env = {**os.environ, "WORKERS": str(args.workers), "THREADS": str(args.threads)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "functions_framework",
            "--target",
            "noop",
            "--source",
            str(Path(__file__).with_name("runtime_floor.py")),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while not port_open(port):
            if process.poll() is not None:
                raise RuntimeError("the no-op function did not start")
            time.sleep(0.1)
        identity = _userinfo(str(uuid.uuid4()), "floor@bench.example", "Floor")
        count = int(max(args.expected_rate * 3, 30_000) * (args.warmup + args.duration))
        items = [(str(uuid.uuid4()), identity) for _ in range(count)]
        name = f"(r) no-op function, {args.clients} clients"
        meter = CpuMeter({"function": process.pid})
        return measure(
            name,
            port,
            "X-Apigateway-Api-Userinfo",
            items,
            args.clients,
            args.client_procs,
            args.warmup,
            args.duration,
            meter,
        )
    finally:
        stop_process(process)


# -- the run ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench booking", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", "15")))
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--client-procs", type=int, default=1, help="processes of the HTTP load generator")
    parser.add_argument("--workers", type=int, default=2, help="processes of each function (WORKERS)")
    parser.add_argument("--threads", type=int, default=8, help="request threads per process (THREADS, = DB pool size)")
    parser.add_argument("--doctors", type=int, default=100)
    parser.add_argument("--slots-per-doctor", type=int, default=3000)
    parser.add_argument("--patients-per-doctor", type=int, default=50)
    parser.add_argument("--pgbench-mode", default="prepared", choices=("prepared", "extended", "simple"))
    parser.add_argument(
        "--expected-rate", type=float, default=4000.0, help="bookings/s to reserve slots for in each HTTP phase"
    )
    parser.add_argument(
        "--phases", default="abcr", help="which of a, b, c and r (a no-op function: the runtime's own cost) to run"
    )
    parser.add_argument("--print-script", action="store_true", help="print the pgbench script and exit")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the last run's database while it has slots left (quick tuning runs)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args([] if argv is None else argv)
    if args.print_script:
        print(pgbench_script())
        return 0
    print(f"booking benchmark: {load_average()}", flush=True)
    with server("bench", BOOKING_PG_PORT) as pg:
        timer = Timer()
        url = pg.url(DATABASE)
        if args.reuse and pg.exists(DATABASE) and remaining(url) > 100_000:
            # For trying settings one after another; a figure to keep wants a fresh database.
            print(f"reusing {DATABASE}: {remaining(url)} slots left", flush=True)
        else:
            url = pg.recreate(DATABASE)
            migrate(url)
            data = build(url, args.doctors, args.slots_per_doctor, args.patients_per_doctor)
            print(
                f"built {data.total} slots of {data.doctors} doctors, "
                f"{data.doctors * args.patients_per_doctor} patients, in {timer}",
                flush=True,
            )
        results: dict[str, Figures] = {}
        if "a" in args.phases:
            meter = CpuMeter({"postgres": pg.postmaster} if pg.postmaster else {})
            settle(url)
            results["a"] = run_pgbench(url, args.clients, args.warmup, args.duration, args.pgbench_mode, meter)
            print(results["a"].line(), flush=True)
        if "b" in args.phases or "c" in args.phases:
            results.update(_http_phases(args, url, pg.postmaster))
        if "r" in args.phases:
            results["r"] = run_runtime_floor(args)
            print(results["r"].line(), flush=True)
        _summary(url, results)
    return 0


def _http_phases(args: argparse.Namespace, url: str, postmaster: int | None) -> dict[str, Figures]:
    from local.stack import Stack

    state = bench_dir("bench/stack")
    stack = Stack(
        state=state,
        ports=PORTS,
        database_url=url,
        workers=args.workers,
        threads=args.threads,
        seed=False,
        extensions=[],
        functions=("book",),
        extra_env={
            "MAX_UPCOMING_APPOINTMENTS": str(BENCH_MAX_UPCOMING),
            "MAX_CHANGES_PER_HOUR": str(BENCH_MAX_CHANGES),
        },
    )
    patients = _patients(url)
    results: dict[str, Figures] = {}
    stack.start()
    meter = CpuMeter({"postgres": postmaster} if postmaster else {})
    for service in ("book", "gateway"):
        process = stack.find(service).process
        if process is not None:
            meter.roots[service] = process.pid
    try:
        if "b" in args.phases:
            settle(url)
            identities = {p[0]: _userinfo(*p) for p in patients}
            figures = run_http(
                f"(b) book function, {args.clients} clients",
                url,
                PORTS.book,
                "X-Apigateway-Api-Userinfo",
                identities,
                args.clients,
                args.client_procs,
                args.warmup,
                args.duration,
                args.expected_rate,
                meter,
            )
            results["b"] = figures
            print(figures.line(), flush=True)
        if "c" in args.phases:
            settle(url)
            tokens = _tokens(state, patients)
            figures = run_http(
                f"(c) gateway, {args.clients} clients",
                url,
                PORTS.gateway,
                "Authorization",
                tokens,
                args.clients,
                args.client_procs,
                args.warmup,
                args.duration,
                args.expected_rate,
                meter,
            )
            results["c"] = figures
            print(figures.line(), flush=True)
    finally:
        stack.stop()
    return results


def _tokens(state: Path, patients: list[tuple[str, str, str]]) -> dict[str, str]:
    """`Bearer <jwt>` per patient, as local.keys.make_token makes them, with the key loaded once."""
    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from local import keys

    keys.ensure_keys(state)
    private = load_pem_private_key((keys.key_dir(state) / "private.pem").read_bytes(), password=None)
    now = int(time.time())
    tokens = {}
    for patient_id, email, name in patients:
        claims = {
            "iss": keys.ISSUER,
            "aud": keys.AUDIENCE,
            "sub": patient_id,
            "email": email,
            "email_verified": True,
            "role": "patient",
            "name": name,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        }
        token = jwt.encode(claims, private, algorithm="RS256", headers={"kid": keys.KEY_ID})  # type: ignore[arg-type]
        tokens[patient_id] = f"Bearer {token}"
    return tokens


def _patients(url: str) -> list[tuple[str, str, str]]:
    conn = connect(url)
    try:
        rows = conn.run("SELECT DISTINCT patient_id, email, name FROM bench_slots")
    finally:
        conn.close()
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def _summary(url: str, results: dict[str, Figures]) -> None:
    conn = connect(url)
    try:
        appointments = int(conn.run("SELECT count(*) FROM appointments")[0][0])
        audits = int(conn.run("SELECT count(*) FROM audit_appointment")[0][0])
        rows = int(conn.run("SELECT count(*) FROM outbox")[0][0])
    finally:
        conn.close()
    print(f"\ndatabase after the run: {appointments} appointments, {audits} audit rows, {rows} outbox rows", flush=True)
    print(f"{load_average()} (other work on the machine skews the figures)")
    print("\n" + "\n".join(f.line() for f in results.values()))
    a = results.get("a")
    for key, target in (("b", 0.5), ("c", 0.35)):
        if a and key in results and a.rate > 0:
            ratio = results[key].rate / a.rate
            verdict = "meets" if ratio >= target else "MISSES"
            print(f"{key}/a = {ratio:.2f}  ({verdict} the target {target})")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
