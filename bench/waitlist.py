"""The waitlist: a simulated clinic day on the local stack (decision 0013).

1,000 patients, every doctor's day fully booked (20 doctors x 50 slots); 400 of the
patients join one doctor's waitlist for that day over HTTP (one drawn onto a doctor they
are booked with that day is refused, 409 already-booked-in-range); 200 random appointments
are cancelled over HTTP at 10/s by their patients. Each waiting patient, when an offer
email reaches the mail sink, accepts after a random delay (70%) or never (30%, and the
hold expires: HOLD_MINUTES is 0.2 here, through the delayed Cloud Task). The stack is
warmed up first (--cold: not), as a clinic's functions are. Reported:

  - the share of the freed slots re-booked through the waitlist;
  - commit -> offer email (p50/p99): from the freeing transaction's start (the offer's
    offered_at, a moment before its commit) to the sink writing the .eml file, and its
    stages;
  - that no slot ended with two appointments, and none ended free while a matching
    entry that was never offered it still waited (an entry whose patient holds an
    appointment with that doctor in its range is over, as the code has it);
  - that every offer emailed reached the sink (one answered before its email task ran
    rightly has none).
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


def _booked_doctor(
    conn: pg8000.native.Connection, name: str, day: datetime, slots: int
) -> tuple[uuid.UUID, list[tuple[uuid.UUID, uuid.UUID]]]:
    """A doctor with `slots` 10-minute slots from `day`, each booked by a patient of its
    own: (doctor, [(patient, appointment)])."""
    doctor = uuid.uuid4()
    booked: list[tuple[uuid.UUID, uuid.UUID]] = []
    conn.run(
        "INSERT INTO users (id, email, name, role) VALUES (:id, :e, :n, 'doctor')",
        id=doctor,
        e=f"dr-{doctor.hex[:12]}@example.com",
        n=name,
    )
    conn.run("INSERT INTO doctors_profiles (user_id, specialty, timezone) VALUES (:id, 'GP', 'UTC')", id=doctor)
    for i in range(slots):
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
    return doctor, booked


def _clinic(url: str, day: datetime) -> tuple[list[uuid.UUID], list[tuple[uuid.UUID, uuid.UUID]]]:
    """Doctors with every slot booked, one appointment per patient: (doctors, [(patient, appointment)])."""
    conn = connect(url)
    try:
        doctors: list[uuid.UUID] = []
        booked: list[tuple[uuid.UUID, uuid.UUID]] = []
        for _ in range(DOCTORS):
            doctor, appointments = _booked_doctor(conn, "Dr. Bench", day, SLOTS_PER_DOCTOR)
            doctors.append(doctor)
            booked += appointments
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
        # Enough that every patient waiting to accept sleeps at once (about 7/s for 8 s at
        # most): with fewer, accepts queue behind others' sleeps and come later than drawn.
        self.pool = ThreadPoolExecutor(96)
        self.accept_errors = 0
        self.late = 0.0  # the most an accept came after its drawn moment, in seconds
        self.gone = 0  # offers read but no longer open when the patient answered

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
                due = time.monotonic() + self.random.uniform(0.5, 8.0)
                self.pool.submit(self._accept, uuid.UUID(str(patient)), str(entry), offer, due)

    def _accept(self, patient: uuid.UUID, entry: str, offer: str, due: float) -> None:
        """Accepts the offer the patient read, naming it as the web app does: after an
        expiry the entry may hold another, never emailed yet, which the API then refuses
        (409 offer-ended) rather than book."""
        try:
            time.sleep(max(0.0, due - time.monotonic()))
            with self.lock:
                self.late = max(self.late, time.monotonic() - due)
            response = requests.post(
                f"{self.stack.url('book')}/waitlist/{entry}/accept",
                json={"offer_id": offer},
                headers=_userinfo(patient),
                timeout=60,
            )
            if response.status_code == 409 and response.json().get("type") == "/problems/offer-ended":
                with self.lock:
                    self.gone += 1
            elif response.status_code not in (200, 409):
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
    parser.add_argument(
        "--cold", action="store_true", help="no warm-up: the first changes of each process load the Google clients"
    )
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
            if not args.cold:
                _warm_up(stack, url, day + timedelta(days=1))
                print(f"warmed up; {load_average()}", flush=True)
            waiting = rng.sample([p for p, _ in booked], args.waiting)
            accepting = {p for p in waiting if rng.random() < 0.7}
            session = requests.Session()
            refused = 0
            for patient in waiting:
                body = {"doctor_id": str(rng.choice(doctors)), "from": str(day.date()), "to": str(day.date())}
                response = session.post(
                    f"{stack.url('book')}/waitlist", json=body, headers=_userinfo(patient), timeout=60
                )
                # A patient drawn onto their own doctor's list is booked with them that day:
                # refused (about 1 in 20), as the API has it.
                if response.status_code == 409 and response.json()["type"] == "/problems/already-booked-in-range":
                    refused += 1
                    continue
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
                lines, ok = _figures(conn, [a for _, a in cancelled], patients.emails, refused)
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
    print(
        f"cancel errors {errors}, accept errors {patients.accept_errors}; offers no longer open when accepted"
        f" {patients.gone}; accepts at most {patients.late:.2f} s after their drawn moment"
    )
    return 0 if ok else 1


WARM_UP = 16


def _warm_up(stack: Stack, url: str, day: datetime) -> None:
    """A clinic's functions are warm: each process loads the Cloud Tasks and Pub/Sub
    clients on its first dispatch (about a second; shared/dispatch.py), which a freshly
    started stack would otherwise pay inside the measured day. Another doctor's slots, on
    another day, are cancelled with patients waiting (cancel makes offers), the holds
    expire (notify makes the next offers), then the patients leave (book)."""
    conn = connect(url)
    try:
        doctor, booked = _booked_doctor(conn, "Dr. Warm", day, WARM_UP)
        body = {"doctor_id": str(doctor), "from": str(day.date()), "to": str(day.date())}
        waiting = [uuid.uuid4() for _ in range(WARM_UP)]
        entries = []
        for patient in waiting:
            response = requests.post(f"{stack.url('book')}/waitlist", json=body, headers=_userinfo(patient), timeout=60)
            assert response.status_code == 201, response.text
            entries.append((patient, response.json()["id"]))
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda b: requests.patch(
                        f"{stack.url('cancel')}/appointments/{b[1]}",
                        json={"status": "CANCELLED"},
                        headers=_userinfo(b[0]),
                        timeout=60,
                    ),
                    booked,
                )
            )
            deadline = time.monotonic() + 120
            while (
                time.monotonic() < deadline
                and not conn.run(
                    "SELECT count(*) >= :n FROM waitlist_events v JOIN waitlist_entries e ON e.id = v.entry_id"
                    " WHERE e.doctor_id = :d AND v.action = 'EXPIRED'",
                    d=doctor,
                    n=WARM_UP,
                )[0][0]
            ):
                time.sleep(0.2)
            list(
                pool.map(
                    lambda e: requests.delete(
                        f"{stack.url('book')}/waitlist/{e[1]}", headers=_userinfo(e[0]), timeout=60
                    ),
                    entries,
                )
            )
    finally:
        conn.close()


def _figures(
    conn: pg8000.native.Connection, appointments: list[uuid.UUID], emails: dict[str, float], refused: int
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
    wasted = [r[0] for r in run(_WASTED, s=slots)]
    # Entries over: their patient holds an appointment with that doctor that day. Joins
    # like that are refused, so none should be over from the start.
    over = run(f"SELECT count(*) FROM waitlist_entries e WHERE e.status = 'WAITING' AND {_BOOKED_IN_RANGE}")[0][0]
    offers = run(
        "SELECT CAST(id AS text), offered_at, emailed_at IS NOT NULL FROM waitlist_offers"
        " WHERE slot_id = ANY(CAST(:s AS uuid[]))",
        s=slots,
    )
    delays = sorted((emails[o] - at.timestamp()) * 1000 for o, at, _ in offers if o in emails)
    within = sum(1 for d in delays if d <= 1000)
    # An offer answered (or ended) before its email task ran rightly sends none; one marked
    # emailed whose message never reached the sink would be lost.
    unsent = [o for o, _, emailed in offers if not emailed]
    lost = [o for o, _, emailed in offers if emailed and o not in emails]
    figures = Figures("commit -> offer email", len(delays), 1.0, delays, note=f"{within}/{len(delays)} within 1 s")
    outcomes = dict(
        run(
            "SELECT CAST(status AS text), count(*) FROM waitlist_offers WHERE slot_id = ANY(CAST(:s AS uuid[]))"
            " GROUP BY status",
            s=slots,
        )
    )
    lines = [
        f"freed slots {len(slots)}: offered {offered}, re-booked through the waitlist {rebooked}"
        f" ({100 * rebooked / max(1, len(slots)):.1f}%)",
        f"joins refused: already booked (the patient drawn onto their own doctor's list) {refused};"
        f" entries over (their patient booked that doctor that day) {over}",
        f"offers {sum(outcomes.values())}: {outcomes}; emails {len(delays)}; ended before their email task ran"
        f" (none sent) {len(unsent)}; marked sent but not in the sink {len(lost)}",
        f"commit -> offer email p50 {figures.p(0.5):.0f} ms, p99 {figures.p(0.99):.0f} ms, max"
        f" {max(delays, default=0):.0f} ms; {within}/{len(delays)} within 1 s",
        f"slots with two appointments: {doubles}; freed slots left free while a matching entry waited: {len(wasted)}",
    ]
    lines += _stages(conn, {o: at for o, at in emails.items() if o in {offer for offer, _, _ in offers}})
    lines += _explain_wasted(conn, wasted)
    lines += _explain_offers(conn, "ended before its email task ran", unsent)
    lines += _explain_offers(conn, "marked sent, not in the sink", lost)
    return lines, doubles == 0 and not wasted and not lost


# The code's matching (shared/sql/waitlist.sql, hold_slot_for_next_entry) of a waiting
# entry e and a free slot s it was never offered, less the lead time and times of day
# (every slot here is days ahead, no entry names times).
_BOOKED_IN_RANGE = """EXISTS (
    -- The entry is over: its patient holds an appointment with that doctor in its range.
    SELECT 1 FROM appointments b
    WHERE b.patient_id = e.patient_id AND b.doctor_id = e.doctor_id AND b.status = 'BOOKED'
      AND b.start_time >= e.range_start AND b.start_time < e.range_end)"""
_MATCHES = f"""
    e.doctor_id = s.doctor_id AND e.status = 'WAITING'
    AND e.range_start <= s.start_time AND e.range_end > s.start_time
    AND NOT EXISTS (SELECT 1 FROM waitlist_offers o WHERE o.entry_id = e.id AND o.slot_id = s.id)
    AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.patient_id = e.patient_id AND a.status = 'BOOKED'
        AND tstzrange(a.start_time, a.end_time) && tstzrange(s.start_time, s.end_time))
    AND NOT {_BOOKED_IN_RANGE}"""
# Free at the end while a matching entry still waits.
_WASTED = f"""
SELECT CAST(s.id AS text) FROM slots AS s
WHERE s.id = ANY(CAST(:s AS uuid[]))
  AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.slot_id = s.id AND a.status = 'BOOKED')
  AND NOT EXISTS (SELECT 1 FROM waitlist_offers o WHERE o.slot_id = s.id AND o.status = 'OFFERED')
  AND EXISTS (SELECT 1 FROM waitlist_entries e WHERE {_MATCHES})
ORDER BY s.start_time
"""


def _stages(conn: pg8000.native.Connection, emails: dict[str, float]) -> list[str]:
    """Where commit -> email goes: to the email task's creation (the outbox row marked
    dispatched, a moment after), to notify starting on it (emailed_at, its transaction's
    start), to the sink writing it; p50 and max, of all and of those over 1 s."""
    rows = conn.run(
        "SELECT CAST(o.id AS text), o.offered_at, x.dispatched_at, o.emailed_at FROM waitlist_offers o"
        " JOIN outbox x ON x.name = 'offer-' || o.id || '-email'"
        " WHERE o.emailed_at IS NOT NULL AND x.dispatched_at IS NOT NULL"
    )
    stages = [
        (
            (emails[o] - offered.timestamp()) * 1000,
            (dispatched - offered).total_seconds() * 1000,
            (started - dispatched).total_seconds() * 1000,
            (emails[o] - started.timestamp()) * 1000,
        )
        for o, offered, dispatched, started in rows
        if o in emails
    ]
    lines = []
    for label, chosen in (("all", stages), ("over 1 s", [s for s in stages if s[0] > 1000])):
        if not chosen:
            continue
        parts = []
        for i, name in ((1, "to the task"), (2, "queued to notify"), (3, "notify to the sink")):
            values = sorted(s[i] for s in chosen)
            parts.append(f"{name} p50 {values[len(values) // 2]:.0f} max {values[-1]:.0f}")
        lines.append(f"  stages, {label} ({len(chosen)}), ms: " + "; ".join(parts))
    return lines


def _explain_wasted(conn: pg8000.native.Connection, slots: list[str]) -> list[str]:
    """For each slot left free while a matching entry waited: the slot's appointments,
    the entries that match it with their trail, and their patients' appointments."""
    run, lines = conn.run, []
    for slot in slots:
        [[doctor, start, end]] = run("SELECT doctor_id, start_time, end_time FROM slots WHERE id = :s", s=slot)
        lines.append(f"  slot {slot} (doctor {str(doctor)[:8]}, {start:%H:%M}-{end:%H:%M})")
        for who, status, action, at in run(
            "SELECT CAST(patient_id AS text), CAST(a.status AS text), au.action, au.occurred_at"
            " FROM appointments a JOIN audit_appointment au ON au.appointment_id = a.id"
            " WHERE a.slot_id = :s ORDER BY au.occurred_at",
            s=slot,
        ):
            lines.append(f"    appointment of {who[:8]} now {status}: {action} at {at:%H:%M:%S.%f}")
        entries = run(
            "SELECT CAST(e.id AS text), CAST(e.patient_id AS text), CAST(e.status AS text), e.created_at"
            f" FROM waitlist_entries e JOIN slots s ON s.id = :s WHERE {_MATCHES} ORDER BY e.created_at",
            s=slot,
        )
        for entry, patient, status, created in entries:
            lines.append(f"    entry {entry[:8]} of patient {patient[:8]}: {status}, joined {created:%H:%M:%S}")
            for action, offer_slot, at, details in run(
                "SELECT CAST(action AS text), CAST(slot_id AS text), occurred_at, CAST(details AS text)"
                " FROM waitlist_events WHERE entry_id = :e ORDER BY id",
                e=entry,
            ):
                lines.append(f"      {at:%H:%M:%S.%f} {action} slot {(offer_slot or '-')[:8]} {details}")
            for a_doctor, a_start, a_end, a_status in run(
                "SELECT doctor_id, start_time, end_time, CAST(status AS text) FROM appointments"
                " WHERE patient_id = :p ORDER BY start_time",
                p=patient,
            ):
                same = " (this doctor)" if str(a_doctor) == str(doctor) else ""
                lines.append(f"      appointment {a_start:%H:%M}-{a_end:%H:%M} {a_status}{same}")
    return lines


def _explain_offers(conn: pg8000.native.Connection, what: str, offers: list[str]) -> list[str]:
    """Offers without an email: their trail."""
    lines = []
    for offer in offers:
        [[status, offered, ended]] = conn.run(
            "SELECT CAST(status AS text), offered_at, ended_at FROM waitlist_offers WHERE id = :o", o=offer
        )
        lines.append(f"  offer {offer[:8]} {what}: {status}, offered {offered:%H:%M:%S.%f}, ended {ended}")
        for action, at, actor in conn.run(
            "SELECT CAST(action AS text), occurred_at, CAST(actor_id AS text) FROM waitlist_events"
            " WHERE offer_id = :o ORDER BY id",
            o=offer,
        ):
            lines.append(f"    {at:%H:%M:%S.%f} {action} by {actor}")
    return lines


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
