"""PostgreSQL restarts under load: 503 problem+json with Retry-After while it is down
(never a 500), and the functions recover by themselves once it is back."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import requests

from local.stack import Stack
from tests import helpers
from tests.e2e.booking_support import register
from tests.e2e.client import Api, Caller
from tests.e2e.conftest import E2E_ENV


@dataclass
class Outcome:
    at: float
    kind: str
    status: int
    content_type: str
    retry_after: str | None
    body: str


# Below MAX_CHANGES_PER_HOUR in these tests (tests/e2e/conftest.py), less a margin.
CHANGES_PER_PATIENT = int(E2E_ENV["MAX_CHANGES_PER_HOUR"]) - 10


class Load:
    """Clients that keep reading and booking on their own threads until stopped."""

    def __init__(self, api: Api, doctor: Caller, slots: list[str]) -> None:
        self.api, self.doctor = api, doctor
        self.lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        self.stop = threading.Event()
        # Each booking client books its own slot and cancels it, over and over: the slot is
        # bookable again at once, and both the book and the cancel function are exercised.
        self.own_slot = dict(zip(("book-1", "book-2"), slots, strict=False))
        self.booked: dict[str, str | None] = {}
        self.threads = [
            threading.Thread(target=self.run, args=(kind,), daemon=True)
            for kind in ("doctor", "slots", "list", "list", "book-1", "book-2")
        ]

    def one(self, kind: str, patient: Caller, session: requests.Session) -> tuple[str, requests.Response]:
        base = self.api.base
        if kind == "doctor":
            return kind, session.get(f"{base}/doctors/{self.doctor.id}", timeout=30)
        if kind == "slots":
            day = (date.today() + timedelta(days=27)).isoformat()
            return kind, session.get(
                f"{base}/doctors/{self.doctor.id}/slots", params={"from": day, "to": day}, timeout=30
            )
        if kind == "list":
            return kind, patient.get("/appointments")
        appointment = self.booked.get(kind)
        if appointment is None:
            response = patient.post("/appointments", {"slot_id": self.own_slot[kind]})
            if response.status_code == 201:
                self.booked[kind] = response.json()["id"]
            return "book", response
        response = patient.patch(f"/appointments/{appointment}", {"status": "CANCELLED"})
        if response.status_code == 200:
            self.booked[kind] = None
        return "cancel", response

    def run(self, kind: str) -> None:
        patient = self.api.patient()
        register(patient)
        session = requests.Session()
        changes = 0
        while not self.stop.is_set():
            if changes >= CHANGES_PER_PATIENT and self.booked.get(kind) is None:
                # A new patient now and then: one looping book-cancel meets MAX_CHANGES_PER_HOUR.
                # (Their first booking makes their profile; no request here, so none fails.)
                patient, changes = self.api.patient(), 0
            try:
                label, response = self.one(kind, patient, session)
            except requests.RequestException as error:
                self.record(Outcome(time.monotonic(), kind, 0, "", None, repr(error)))
                continue
            changes += label in ("book", "cancel")
            self.record(
                Outcome(
                    time.monotonic(),
                    label,
                    response.status_code,
                    response.headers.get("Content-Type", ""),
                    response.headers.get("Retry-After"),
                    response.text[:300],
                )
            )
            time.sleep(0.02)

    def record(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def since(self, moment: float) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if o.at >= moment]


def test_a_database_restart_gives_503s_then_recovers(api: Api, stack: Stack, pg_server: helpers.TestServer) -> None:
    assert pg_server.embedded is not None, "this test restarts the test's own embedded PostgreSQL"
    doctor = api.doctor()
    slots = [s["id"] for s in api.publish(doctor, date.today() + timedelta(days=27), "09:00", "10:00", 30)]

    with Load(api, doctor, slots) as load:
        time.sleep(1.5)
        before_outage = time.monotonic()
        warm = load.since(0)
        pg_server.embedded.stop()
        try:
            time.sleep(3)
            down = load.since(before_outage)
        finally:
            pg_server.embedded.start()
        back = time.monotonic()
        # Recovery: within 20 s every kind of request succeeds again, with no function restarted.
        deadline = back + 20
        recovered_at: float | None = None
        while time.monotonic() < deadline:
            time.sleep(0.5)
            recent = load.since(time.monotonic() - 1.0)
            kinds = {o.kind for o in recent if o.status in (200, 201)}
            if kinds >= {"doctor", "slots", "list", "book", "cancel"} and all(o.status in (200, 201) for o in recent):
                recovered_at = time.monotonic()
                break
        time.sleep(1.0)
        after = load.since(recovered_at or deadline)

    everything = load.since(0)
    assert warm and all(o.status in (200, 201) for o in warm), [(o.kind, o.status, o.body) for o in warm]
    assert [o for o in everything if o.status == 0] == []
    server_errors = [o for o in everything if o.status >= 500]
    assert {o.status for o in server_errors} <= {503}, [(o.kind, o.status, o.body) for o in server_errors]
    for outcome in server_errors:
        assert outcome.content_type.split(";")[0] == "application/problem+json", outcome
        assert outcome.retry_after is not None and int(outcome.retry_after) > 0, outcome
        assert '"status": 503' in outcome.body
        # Hosts, ports and driver messages stay in the logs.
        assert "127.0.0.1" not in outcome.body and "port" not in outcome.body, outcome.body
    assert any(o.status == 503 for o in down), "no request saw the database down"
    assert {o.kind for o in down if o.status == 503} >= {"doctor", "list"}
    assert {o.kind for o in down if o.status == 503} & {"book", "cancel"}
    assert recovered_at is not None, [(o.kind, o.status, o.body[:80]) for o in load.since(back)][-20:]
    assert after and all(o.status in (200, 201) for o in after)
    # The functions are the same processes as before the outage.
    for name in ("slots", "book", "cancel"):
        process = stack.find(name).process
        assert process is not None and process.poll() is None
