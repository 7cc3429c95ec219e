"""`clinic run` (what `make run` calls): starts everything, refuses a second copy, Ctrl-C stops all."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import requests

from local.postgres import port_open
from local.stack import Ports
from tests.helpers import TEST_SLOT, state_dir

OFFSET = 6000 + 100 * TEST_SLOT


def _start(state: Path) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env.update({"CLINIC_STATE_DIR": str(state), "CLINIC_PORT_OFFSET": str(OFFSET), "PYTHONUNBUFFERED": "1"})
    process = subprocess.Popen(
        [sys.executable, "-m", "local.cli", "run"], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    lines: list[str] = []

    def _read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)

    threading.Thread(target=_read, daemon=True).start()
    return process, lines


def _children_of_state(state: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(state) in cmdline:
            found.append(proc)
    return found


def test_run_serves_refuses_a_second_copy_and_stops_everything() -> None:
    # Not under pytest's tmp folder: a concurrent pytest session prunes old ones, this
    # running stack's data directory with them (its PostgreSQL was then never stopped).
    state = state_dir("run")
    shutil.rmtree(state)
    ports = Ports.offset(OFFSET)
    process, lines = _start(state)
    try:
        deadline = time.monotonic() + 180
        while not any("Ctrl-C stops everything" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        banner = "".join(lines)
        assert f"http://127.0.0.1:{ports.gateway}" in banner and "curl" in banner
        # The app's address comes first, before anything else the stack prints about itself.
        first_address = next(line for line in lines if "http://" in line)
        assert first_address.startswith(f"Open the app: http://127.0.0.1:{ports.gateway}/ ")

        doctors = requests.get(f"http://127.0.0.1:{ports.gateway}/doctors", timeout=10)
        assert doctors.status_code == 200
        assert len(doctors.json()["items"]) == 3

        second = subprocess.run(
            [sys.executable, "-m", "local.cli", "run"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "CLINIC_STATE_DIR": str(state), "CLINIC_PORT_OFFSET": str(OFFSET)},
        )
        assert second.returncode == 1
        assert "already running" in second.stderr
        assert (
            doctors.status_code == 200
            and requests.get(f"http://127.0.0.1:{ports.gateway}/doctors", timeout=10).status_code == 200
        )
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    assert "stopped." in "".join(lines)
    for name, port in vars(ports).items():
        assert not port_open(port), f"{name} still listens on {port}"
    assert _children_of_state(state) == []
