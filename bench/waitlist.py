"""The waitlist: a simulated clinic day on the local stack (decision 0013).

1,000 patients, every doctor's day fully booked (20 doctors x 50 slots); 400 of the
patients join one doctor's waitlist for that day over HTTP; 200 random appointments
are cancelled over HTTP at 10/s by their patients. Each waiting patient, when an offer
email reaches the mail sink, accepts after a random delay (70%) or never (30%, and the
hold expires: HOLD_MINUTES is 0.2 here, through the delayed Cloud Task). Reported:

  - the share of the freed slots re-booked through the waitlist;
  - commit -> offer email (p50/p99): from the freeing transaction's start (the offer's
    offered_at, a moment before its commit) to the sink writing the .eml file;
  - that no slot ended with two appointments, and none ended free while a matching
    entry that was never offered it still waited.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import shutil
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pg8000.native
import requests

from bench.common import Figures, Timer, bench_dir, connect, load_average, migrate, server
from local.stack import Ports, Stack

PORTS = Ports.offset(5200)
DOCTORS, SLOTS_PER_DOCTOR = 20, 50
HOLD_MINUTES = "0.2"


def _userinfo(sub: uuid.UUID, role: str = "patient") -> dict[str, str]:
    claims = {
        "sub": str(sub),
        "email": f"p-{sub.hex[:12]}@example.com",
        "email_verified": True,
        "name": "P",
        "role": role,
    }
    return {"X-Apigateway-Api-Userinfo": base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")}


def _clinic(url: str, day: datetime) -> tuple[list[uuid.UUID], list[tuple[uuid.UUID, uuid.UUID]]]:
    """Doctors with every slot booked, one appointment per patient: (doctors, [(patient, appointment)])."""
    conn = connect(url)
    try:
        doctors = [uuid.uuid4() for _ in range(DOCTORS)]
        booked: list[tuple[uuid.UUID, uuid.UUID]] = []
        for doctor in doctors:
            conn.run(
                "INSERT INTO users (id, email, name, role) VALUES (:id, :e, 'Dr. Bench', 'doctor')",
                id=doctor,
                e=f"dr-{doctor.hex[:12]}@example.com",
            )
            conn.run("INSERT INTO doctors_profiles (user_id, specialty, timezone) VALUES (:id, 'GP', 'UTC')", id=doctor)
            for i in range(SLOTS_PER_DOCTOR):
                patient = uuid.uuid4()
                start = day + timedelta(minutes=10 * i)
                conn.run(
                    "INSERT INTO users (id, email, name, role) VALUES (:id, :e, 'P', 'patient')",
                    id=patient,
                    e=f"p-{patient.hex[:12]}@example.com",
                )
                conn.run("INSERT INTO patients_profiles (user_id) VALUES (:id)", id=patient)
                rows = conn.run(
                    "WITH s AS (INSERT INTO slots (doctor_id, start_time, end_time) VALUES (:d, :s, :e)"
                    " RETURNING id, doctor_id, start_time, end_time)"
                    " INSERT INTO appointments (slot_id, patient_id, doctor_id, start_time, end_time)"
                    " SELECT id, :p, doctor_id, start_time, end_time FROM s RETURNING id",
                    d=doctor,
                    s=start,
                    e=start + timedelta(minutes=10),
                    p=patient,
                )
                booked.append((patient, uuid.UUID(str(rows[0][0]))))
        return doctors, booked
    finally:
        conn.close()


class Patients:
    """The waiting patients: they read their offer emails and accept, or do not."""

    def __init__(self, stack: Stack, url: str, folder: Path, accepting: set[uuid.UUID], seed: int) -> None:
        self.stack, self.url, self.folder, self.accepting = stack, url, folder, accepting
        self.random = random.Random(seed)
        self.emails: dict[str, float] = {}  # offer id -> when the sink wrote it
        self.read: set[str] = set()
        self.pending = 0
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(16)
        self.accept_errors = 0

    def poll(self) -> None:
        for path in sorted(self.folder.glob("*.eml")):
            if path.name in self.read:
                continue
            self.read.add(path.name)
            head = path.read_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
            message = message_from_bytes(head, policy=policy.default)
            offer = str(message["X-Clinic-Offer"] or "").strip()
            if not offer:
                continue
            self.emails.setdefault(offer, int(path.name.split("-")[0]) / 1e9)
            conn = connect(self.url)
            try:
                [[entry, patient]] = conn.run(
                    "SELECT e.id, e.patient_id FROM waitlist_offers o JOIN waitlist_entries e ON e.id = o.entry_id"
                    " WHERE o.id = :o",
                    o=offer,
                )
            finally:
                conn.close()
            if uuid.UUID(str(patient)) in self.accepting:
                with self.lock:
                    self.pending += 1
                self.pool.submit(self._accept, uuid.UUID(str(patient)), str(entry), self.random.uniform(0.5, 8.0))

    def _accept(self, patient: uuid.UUID, entry: str, delay: float) -> None:
        try:
            time.sleep(delay)
            response = requests.post(
                f"{self.stack.url('book')}/waitlist/{entry}/accept", headers=_userinfo(patient), timeout=60
            )
            if response.status_code not in (200, 409):
                with self.lock:
                    self.accept_errors += 1
        finally:
            with self.lock:
                self.pending -= 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench waitlist", description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=400)
    parser.add_argument("--cancellations", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="cancellations per second")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args([] if argv is None else argv)
    rng = random.Random(args.seed)
    timer = Timer()
    with server("bench-waitlist", PORTS.postgres) as pg:
        url = pg.recreate("bench_waitlist")
        migrate(url)
        state = bench_dir("bench-waitlist")
        shutil.rmtree(state / "mail", ignore_errors=True)
        (state / "mail").mkdir(parents=True, exist_ok=True)
        stack = Stack(
            state=state,
            ports=PORTS,
            database_url=url,
            seed=False,
            functions=("book", "cancel", "notify"),
            extra_env={"REMINDER_OFFSETS": "24h", "SWEEP_INTERVAL": "1", "HOLD_MINUTES": HOLD_MINUTES},
        )
        stack.start()
        try:
            print(f"stack up in {timer}; {load_average()}", flush=True)
            day = (datetime.now(UTC) + timedelta(days=3)).replace(hour=8, minute=0, second=0, microsecond=0)
            doctors, booked = _clinic(url, day)
            waiting = rng.sample([p for p, _ in booked], args.waiting)
            accepting = {p for p in waiting if rng.random() < 0.7}
            session = requests.Session()
            for patient in waiting:
                body = {"doctor_id": str(rng.choice(doctors)), "from": str(day.date()), "to": str(day.date())}
                response = session.post(
                    f"{stack.url('book')}/waitlist", json=body, headers=_userinfo(patient), timeout=60
                )
                assert response.status_code == 201, response.text
            patients = Patients(stack, url, state / "mail", accepting, args.seed)
            cancelled = rng.sample(booked, args.cancellations)
            began = time.monotonic()
            errors = 0

            def cancel(index: int, patient: uuid.UUID, appointment: uuid.UUID) -> None:
                nonlocal errors
                time.sleep(max(0.0, began + index / args.rate - time.monotonic()))
                response = requests.patch(
                    f"{stack.url('cancel')}/appointments/{appointment}",
                    json={"status": "CANCELLED"},
                    headers=_userinfo(patient),
                    timeout=60,
                )
                if response.status_code != 200:
                    errors += 1

            with ThreadPoolExecutor(8) as pool:
                futures = [pool.submit(cancel, i, p, a) for i, (p, a) in enumerate(cancelled)]
                while not all(f.done() for f in futures):
                    patients.poll()
                    time.sleep(0.05)
            # Until every offer has been answered or has expired.
            deadline = time.monotonic() + args.timeout
            conn = connect(url)
            try:
                while time.monotonic() < deadline:
                    patients.poll()
                    open_offers = conn.run("SELECT count(*) FROM waitlist_offers WHERE status = 'OFFERED'")[0][0]
                    if open_offers == 0 and patients.pending == 0:
                        break
                    time.sleep(0.1)
                patients.poll()
                lines, ok = _figures(conn, [a for _, a in cancelled], patients.emails)
            finally:
                conn.close()
            patients.pool.shutdown()
        finally:
            stack.stop()
    print(
        f"\n{len(booked)} patients, {DOCTORS} doctors fully booked, {args.waiting} waiting, {args.cancellations}"
        f" cancellations at {args.rate}/s, 70% accept after 0.5-8 s, hold {HOLD_MINUTES} min; {load_average()}"
    )
    for line in lines:
        print(line)
    print(f"cancel errors {errors}, accept errors {patients.accept_errors}")
    return 0 if ok else 1


def _figures(
    conn: pg8000.native.Connection, appointments: list[uuid.UUID], emails: dict[str, float]
) -> tuple[list[str], bool]:
    run = conn.run
    slots = [
        r[0] for r in run("SELECT slot_id FROM appointments WHERE id = ANY(CAST(:ids AS uuid[]))", ids=appointments)
    ]
    rebooked = run(
        "SELECT count(DISTINCT slot_id) FROM waitlist_offers"
        " WHERE status = 'ACCEPTED' AND slot_id = ANY(CAST(:s AS uuid[]))",
        s=slots,
    )[0][0]
    offered = run(
        "SELECT count(DISTINCT slot_id) FROM waitlist_offers WHERE slot_id = ANY(CAST(:s AS uuid[]))", s=slots
    )[0][0]
    doubles = run(
        "SELECT count(*) FROM (SELECT slot_id FROM appointments WHERE status = 'BOOKED'"
        " GROUP BY slot_id HAVING count(*) > 1) AS d"
    )[0][0]
    # Free at the end while a matching entry that was never offered the slot still waits.
    wasted = run(
        """SELECT count(*) FROM slots AS s
           WHERE s.id = ANY(CAST(:s AS uuid[]))
             AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.slot_id = s.id AND a.status = 'BOOKED')
             AND NOT EXISTS (SELECT 1 FROM waitlist_offers o WHERE o.slot_id = s.id AND o.status = 'OFFERED')
             AND EXISTS (
                 SELECT 1 FROM waitlist_entries e
                 WHERE e.doctor_id = s.doctor_id AND e.status = 'WAITING'
                   AND e.range_start <= s.start_time AND e.range_end > s.start_time
                   AND NOT EXISTS (SELECT 1 FROM waitlist_offers o WHERE o.entry_id = e.id AND o.slot_id = s.id)
                   AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.patient_id = e.patient_id
                       AND a.status = 'BOOKED'
                       AND tstzrange(a.start_time, a.end_time) && tstzrange(s.start_time, s.end_time)))""",
        s=slots,
    )[0][0]
    offers = run("SELECT CAST(id AS text), offered_at FROM waitlist_offers")
    delays = sorted((emails[o] - at.timestamp()) * 1000 for o, at in offers if o in emails)
    within = sum(1 for d in delays if d <= 1000)
    figures = Figures("commit -> offer email", len(delays), 1.0, delays, note=f"{within}/{len(delays)} within 1 s")
    outcomes = dict(run("SELECT CAST(status AS text), count(*) FROM waitlist_offers GROUP BY status"))
    lines = [
        f"freed slots {len(slots)}: offered {offered}, re-booked through the waitlist {rebooked}"
        f" ({100 * rebooked / max(1, len(slots)):.1f}%)",
        f"offers {sum(outcomes.values())}: {outcomes}; emails {len(delays)}",
        f"commit -> offer email p50 {figures.p(0.5):.0f} ms, p99 {figures.p(0.99):.0f} ms, max"
        f" {max(delays, default=0):.0f} ms; {within}/{len(delays)} within 1 s",
        f"slots with two appointments: {doubles}; freed slots left free while a matching entry waited: {wasted}",
    ]
    return lines, doubles == 0 and wasted == 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
