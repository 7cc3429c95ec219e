"""Fault tests of `make run` (`clinic run`, its supervisor): what dies under a running stack
comes back by itself, nothing queued is lost, and the `clinic` commands find this
checkout's stack and refuse another's (local/running.py, decision 0012).

One stack for the module, of its own: its own state folder, embedded PostgreSQL and ports.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import psutil
import pytest
import requests

from local import running
from local.mailsink import read_all
from local.postgres import EmbeddedPostgres, connect_native
from local.stack import Ports
from tests.e2e.client import Api
from tests.e2e.test_notifications import _soon_window
from tests.helpers import TEST_SLOT, state_dir

# Beside test_local_stack.py's stack (6000 + 100 * slot) and the e2e session's.
OFFSET = 6050 + 100 * TEST_SLOT
# What this test process may hold of other stacks (local.events.pull sets the emulator's host).
OTHER_STACKS = {"DATABASE_URL", "TEST_DATABASE_URL", "PUBSUB_EMULATOR_HOST"}


@dataclass
class Supervised:
    process: subprocess.Popen[str]
    lines: list[str]
    state: Path
    ports: Ports

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def wait_said(self, text: str, timeout: float) -> float:
        """Seconds until the supervisor printed `text`."""
        started = time.monotonic()
        while not self.said(text):
            assert self.process.poll() is None, "".join(self.lines)
            assert time.monotonic() - started < timeout, f"no {text!r} in:\n" + "".join(self.lines[-30:])
            time.sleep(0.1)
        return time.monotonic() - started


def clinic(*args: str, state: Path, offset: int | None = None) -> subprocess.CompletedProcess[str]:
    """A `clinic` command as a developer types it in this checkout (no DATABASE_URL)."""
    env = {k: v for k, v in os.environ.items() if k not in OTHER_STACKS | {"CLINIC_PORT_OFFSET"}}
    env["CLINIC_STATE_DIR"] = str(state)
    if offset is not None:
        env["CLINIC_PORT_OFFSET"] = str(offset)
    return subprocess.run(
        [sys.executable, "-m", "local.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[Supervised]:
    # Not under pytest's tmp folder: a concurrent pytest session prunes old ones, this
    # running stack's data directory with them.
    state = state_dir("faults")
    shutil.rmtree(state)
    env = {k: v for k, v in os.environ.items() if k not in OTHER_STACKS}
    env.update(
        {
            "CLINIC_STATE_DIR": str(state),
            "CLINIC_PORT_OFFSET": str(OFFSET),
            "PYTHONUNBUFFERED": "1",
            "REMINDER_OFFSETS": "24h,20s",
            "SWEEP_INTERVAL": "1",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "local.cli", "run"], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    lines: list[str] = []

    def _read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)

    threading.Thread(target=_read, daemon=True).start()
    supervised = Supervised(process, lines, state, Ports.offset(OFFSET))
    try:
        supervised.wait_said("Ctrl-C stops everything", timeout=240)
        yield supervised
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def until_ok(url: str, timeout: float) -> tuple[float, list[int]]:
    """Seconds until GET url answers 200, and the statuses seen before."""
    started, seen = time.monotonic(), []
    while True:
        try:
            status = requests.get(url, timeout=5).status_code
        except requests.RequestException:
            status = 0
        if status == 200:
            return time.monotonic() - started, seen
        seen.append(status)
        assert time.monotonic() - started < timeout, seen[-10:]
        time.sleep(0.2)


def test_the_stack_records_itself_for_this_checkouts_commands(stack: Supervised) -> None:
    recorded = running.read(stack.state)
    assert recorded is not None and recorded.pid == stack.process.pid
    assert recorded.ports == vars(stack.ports) and recorded.embedded_postgres
    # Without CLINIC_PORT_OFFSET the commands find this stack, not the default ports.
    migrated = clinic("migrate", state=stack.state)
    assert migrated.returncode == 0, migrated.stderr
    assert "up to date" in migrated.stdout
    if "pubsub" in recorded.services:
        tailed = clinic("events", "--wait", "1", state=stack.state)
        assert tailed.returncode == 0, tailed.stderr
        assert f"127.0.0.1:{stack.ports.pubsub}" in tailed.stdout
    # An offset that is not the running stack's is refused, saying so.
    wrong = clinic("seed", state=stack.state, offset=OFFSET + 7)
    assert wrong.returncode == 1 and "CLINIC_PORT_OFFSET" in wrong.stderr and "runs with its gateway" in wrong.stderr


def test_another_checkouts_stack_is_refused(stack: Supervised, tmp_path: Path) -> None:
    """A second checkout (its own state folder, no stack of its own running) whose commands
    would reach the first one's ports: every command refuses."""
    other = tmp_path / "other-checkout-state"
    other.mkdir()
    for command in (["seed"], ["migrate"], ["resend-failed", "--since", "2026-01-01"], ["resend", "x"]):
        refused = clinic(*command, state=other, offset=OFFSET)
        assert refused.returncode == 1, (command, refused.stdout, refused.stderr)
        assert "not running" in refused.stderr and "in use" in refused.stderr, refused.stderr
    tailed = clinic("events", "--wait", "1", state=other)
    assert tailed.returncode == 1 and "not running" in tailed.stderr
    # A state file another checkout wrote (a copied or shared state folder) is not this one's.
    copied = tmp_path / "copied-state"
    copied.mkdir()
    text = (stack.state / running.FILE).read_text().replace(str(running.ROOT), "/elsewhere/clinic")
    (copied / running.FILE).write_text(text)
    for command in (["seed"], ["events", "--wait", "1"]):
        refused = clinic(*command, state=copied)
        assert refused.returncode == 1 and "another checkout" in refused.stderr, refused.stderr


def test_a_running_postgres_of_another_checkout_is_refused(stack: Supervised, tmp_path: Path) -> None:
    """This checkout's stack records a database on a port where another checkout's server
    now answers: the commands check the server's data directory and refuse."""
    ours = tmp_path / "ours"
    ours.mkdir()
    recorded = (stack.state / running.FILE).read_text().replace(str(stack.state.resolve()), str(ours))
    (ours / running.FILE).write_text(recorded)  # the stack's own process, alive: this checkout's stack
    refused = clinic("seed", state=ours)
    assert refused.returncode == 1, refused.stdout
    assert "another checkout's" in refused.stderr and str(stack.state / "pgdata") in refused.stderr


def test_a_killed_postgres_is_restarted_and_requests_succeed_again(stack: Supervised) -> None:
    doctors = f"{stack.gateway}/doctors"
    assert requests.get(doctors, timeout=10).status_code == 200
    postgres = EmbeddedPostgres(stack.state / "pgdata")
    found = postgres.postmaster()
    assert found is not None
    killed_at = time.monotonic()
    os.kill(found[0], signal.SIGKILL)
    # Requests in the first instants may still be served by backends that have not yet
    # noticed their server died; what counts is the supervisor's restart and what follows.
    noticed_after = stack.wait_said("postgres is gone", timeout=10)
    stack.wait_said("postgres restarted in", timeout=60)
    [restart] = [line.split(" in ")[1].strip() for line in stack.lines if "postgres restarted in" in line]
    _, seen = until_ok(doctors, timeout=60)
    back_after = time.monotonic() - killed_at
    assert set(seen) <= {503}, seen  # while it was down: 503 (problem+json, tested elsewhere), never a 500
    restarted = postgres.postmaster()
    assert restarted is not None and restarted[0] != found[0]
    assert requests.get(f"{stack.gateway}/doctors/{uuid4()}", timeout=10).status_code == 404  # a fresh query
    print(
        f"\npostgres SIGKILLed: the supervisor noticed within {noticed_after:.1f} s and restarted it in "
        f"{restart}; requests succeed {back_after:.1f} s after the kill ({len(seen)} answered 503 meanwhile)"
    )


def _tasks_emulator(port: int) -> psutil.Process:
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "local.tasks_emulator_server" in cmdline and str(port) in cmdline:
            return proc
    raise AssertionError("the Cloud Tasks emulator is not running")


def test_a_future_reminder_survives_a_killed_tasks_emulator(stack: Supervised) -> None:
    api = Api(stack.gateway, stack.state)
    zone, day, start, end = _soon_window(50)
    doctor = api.doctor(timezone=zone)
    response = doctor.post(f"/doctors/{doctor.id}/slots", {"date": day, "start": start, "end": end, "slot_minutes": 5})
    assert response.status_code == 201, response.text
    slot = response.json()["items"][0]
    patient = api.patient()
    booked = patient.post("/appointments", {"slot_id": slot["id"]})
    assert booked.status_code == 201, booked.text
    appointment = booked.json()["id"]
    recorded = running.read(stack.state)
    assert recorded is not None
    # The outbox handed the reminder to Cloud Tasks and marked it: only the queue holds it now.
    deadline = time.monotonic() + 30
    while True:
        conn = connect_native(recorded.database_url)
        try:
            rows = conn.run(
                "SELECT dispatched_at IS NOT NULL FROM outbox WHERE appointment_id = :a AND target = 'TASK' "
                "AND payload->>'kind' = 'REMINDER' AND deliver_at < now() + interval '1 hour'",
                a=appointment,
            )
        finally:
            conn.close()
        if rows == [[True]]:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    due = datetime.fromisoformat(slot["start_time"]) - timedelta(seconds=20)
    assert due > datetime.now(UTC) + timedelta(seconds=5), "the setup took too long"

    emulator = _tasks_emulator(stack.ports.tasks)
    ahead = (due - datetime.now(UTC)).total_seconds()
    emulator.send_signal(signal.SIGKILL)
    emulator.wait(10)
    stack.wait_said("tasks exited (-9)", timeout=10)
    restarted = _tasks_emulator(stack.ports.tasks)
    assert restarted.pid != emulator.pid

    def reminders() -> list[object]:
        return [
            m
            for m in read_all(stack.state / "mail")
            if m["X-Clinic-Appointment"] == appointment and m["X-Clinic-Kind"] == "REMINDER"
        ]

    deadline = time.monotonic() + 120
    while not reminders():
        assert time.monotonic() < deadline, "the reminder was lost with the emulator"
        time.sleep(0.2)
    arrived = datetime.now(UTC)
    assert arrived >= due - timedelta(seconds=1), "a reminder must not come early"
    time.sleep(3)
    assert len(reminders()) == 1
    print(
        f"\ntasks emulator SIGKILLed {ahead:.0f} s before the reminder was due, restarted by the supervisor; "
        f"the reminder came {(arrived - due).total_seconds():.1f} s after its due time"
    )
