"""Notifications: messages/s from the outbox to the SMTP sink, and commit-to-email latency.

A stack of its own (Ports.offset(5000), its own embedded PostgreSQL and state
folder) with the Cloud Tasks emulator, the Pub/Sub emulator, the SMTP sink and the
sweep timer. Three phases, 2,000 bookings each, made over HTTP against the book
function by concurrent clients; each booking dispatches its rows after commit
(confirmation, 24h reminder, event):

- paced: bookings at a steady rate below what the pipeline carries (--rate, 20/s);
  measured is commit -> email per message (commit = the outbox row's created_at, the
  booking transaction's start; email = when the sink wrote the .eml file);
- burst: bookings as fast as the clients go; measured are confirmations per second
  from the first commit to the last email (and latency, now mostly queueing);
- backlog: the Cloud Tasks emulator is down while the bookings are made, so every
  task waits in the outbox; then it comes back and the sweep drains the backlog:
  messages/s from the restart to the last confirmation in the sink.

The local emulator dispatches one task at a time per queue (Cloud Tasks runs up to
max_concurrent_dispatches in parallel), so these figures bound the local pipeline,
not production's.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path

import requests

from bench.common import Figures, Timer, bench_dir, connect, load_average, server
from local.postgres import port_open
from local.stack import Ports, Stack

PORTS = Ports.offset(5000)


def _userinfo(sub: uuid.UUID) -> str:
    claims = {
        "sub": str(sub),
        "email": f"bench-{sub.hex[:12]}@example.com",
        "email_verified": True,
        "name": "Bench Patient",
        "role": "patient",
    }
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")


def _make_slots(count: int, first_day: int) -> list[str]:
    """`count` free slots over several doctors, `first_day` days ahead and after."""
    from shared import doctors
    from shared.auth import Caller
    from shared.models import AvailabilityWindow, DoctorCreate, Slot
    from shared.unit_of_work import UnitOfWork, run_and_commit

    admin = Caller(id=uuid.uuid4(), email=f"admin-{uuid.uuid4().hex[:8]}@example.com", name="Bench", role="admin")
    slot_ids: list[str] = []
    day = first_day
    while len(slot_ids) < count:
        doctor_id = uuid.uuid4()

        def publish(uow: UnitOfWork, doctor_id: uuid.UUID = doctor_id, day: int = day) -> list[str]:
            created: list[Slot] = []
            doctors.create_doctor(
                uow,
                admin,
                DoctorCreate(
                    id=doctor_id,
                    email=f"dr-{doctor_id.hex[:12]}@example.com",
                    name="Dr. Bench",
                    specialty="Benchmarks",
                    timezone="Europe/Berlin",
                ),
            )
            for offset in range(2):
                window = AvailabilityWindow(
                    date=(datetime.now(UTC) + timedelta(days=day + offset)).date(),
                    start=clock(7, 0),
                    end=clock(19, 0),
                    slot_minutes=5,
                )
                created += doctors.publish_slots(uow, admin, doctor_id, window).items
            return [str(s.id) for s in created]

        slot_ids += run_and_commit(publish)
        day += 2
    return slot_ids[:count]


def _book_all(
    stack: Stack, slot_ids: list[str], clients: int, rate: float | None = None
) -> tuple[list[float], list[str], int, float]:
    """Books every slot over HTTP (at `rate` per second, or as fast as the clients go);
    returns latencies (ms), appointment ids, errors, seconds."""
    url = f"{stack.url('book')}/appointments"
    local = threading.local()
    latencies: list[float] = []
    ids: list[str] = []
    errors = 0
    lock = threading.Lock()

    def one(index: int, slot_id: str) -> None:
        nonlocal errors
        if rate:
            time.sleep(max(0.0, begun + index / rate - time.monotonic()))
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        started = time.perf_counter()
        response = session.post(
            url, json={"slot_id": slot_id}, timeout=60, headers={"X-Apigateway-Api-Userinfo": _userinfo(uuid.uuid4())}
        )
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            if response.status_code == 201:
                latencies.append(elapsed)
                ids.append(response.json()["id"])
            else:
                errors += 1

    begun = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(len(slot_ids)), slot_ids))
    return sorted(latencies), ids, errors, time.monotonic() - begun


def _sink_times(folder: Path, wanted: set[str], timeout: float) -> dict[str, float]:
    """appointment id -> when its confirmation was written (epoch s), waiting for all of them."""
    from email import message_from_bytes, policy

    seen: dict[str, float] = {}
    read: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.eml")):
            if path.name in read:
                continue
            read.add(path.name)
            # Only the headers: the body is not needed.
            head = path.read_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
            message = message_from_bytes(head, policy=policy.default)
            appointment = str(message["X-Clinic-Appointment"] or "").strip()
            if appointment in wanted and str(message["X-Clinic-Kind"]).strip() == "CONFIRMATION":
                seen.setdefault(appointment, int(path.name.split("-")[0]) / 1e9)
        if len(seen) >= len(wanted):
            break
        time.sleep(0.5)
    return seen


def _commit_times(url: str, ids: list[str]) -> dict[str, float]:
    conn = connect(url)
    try:
        rows = conn.run(
            "SELECT appointment_id, created_at FROM outbox WHERE target = 'TASK' "
            "AND payload->>'kind' = 'CONFIRMATION' AND appointment_id = ANY(CAST(:ids AS uuid[]))",
            ids=ids,
        )
    finally:
        conn.close()
    return {str(a): created.timestamp() for a, created in rows}


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} did not open")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench notify", description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rate", type=float, default=20.0, help="bookings per second in the paced phase")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the emails")
    args = parser.parse_args([] if argv is None else argv)
    timer = Timer()
    with server("bench-notify", PORTS.postgres) as pg:
        url = pg.recreate("bench_notify")
        state = bench_dir("bench-notify")
        shutil.rmtree(state / "mail", ignore_errors=True)
        stack = Stack(
            state=state,
            ports=PORTS,
            database_url=url,
            seed=False,
            functions=("book", "notify"),
            extra_env={"REMINDER_OFFSETS": "24h", "SWEEP_INTERVAL": "1"},
        )
        stack.start()
        try:
            print(f"stack up in {timer}: {', '.join(s.name for s in stack.services)}; {load_average()}", flush=True)
            n = args.bookings
            slots = _make_slots(3 * n, first_day=3)
            results = []

            # -- paced, then burst: dispatch after commit ------------------------------------
            for phase, batch, rate in (("paced", slots[:n], args.rate), ("burst", slots[n : 2 * n], None)):
                latencies, ids, errors, seconds = _book_all(stack, batch, args.clients, rate)
                results.append(Figures(f"{phase}: book (incl. dispatch)", len(ids), seconds, latencies, errors))
                sent = _sink_times(state / "mail", set(ids), args.timeout)
                committed = _commit_times(url, ids)
                delays = sorted((sent[a] - committed[a]) * 1000 for a in sent if a in committed)
                window = max(sent.values()) - min(committed.values()) if sent else 0.0
                results.append(
                    Figures(
                        f"{phase}: outbox -> SMTP sink",
                        len(sent),
                        window,
                        delays,
                        note="latency = commit -> email written by the sink",
                    )
                )

            # -- backlog: Cloud Tasks down while booking, then drained by the sweep ---------
            tasks = stack.find("tasks")
            stack.stop_service(tasks)
            latencies, ids, errors, seconds = _book_all(stack, slots[2 * n :], args.clients)
            results.append(Figures("backlog: book (Cloud Tasks down)", len(ids), seconds, latencies, errors))
            restarted = time.time()
            stack.spawn(tasks)
            _wait_port(PORTS.tasks)
            sent = _sink_times(state / "mail", set(ids), args.timeout)
            drain = sorted((t - restarted) * 1000 for t in sent.values())
            results.append(
                Figures(
                    "backlog: outbox -> SMTP sink",
                    len(sent),
                    max(sent.values()) - restarted if sent else 0.0,
                    drain,
                    note="latency = emulator back -> email written (sweep every 1 s)",
                )
            )
        finally:
            stack.stop()
    print(f"\n{args.bookings} bookings per phase, {args.clients} clients; {load_average()}")
    for figures in results:
        print(figures.line())
    missing = [f for f in results if f.count < args.bookings]
    if missing:
        print("not every message arrived: " + ", ".join(f"{f.name} {f.count}/{args.bookings}" for f in missing))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
