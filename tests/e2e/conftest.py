"""End-to-end tests: the whole local stack, started once per session, over HTTP."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from local import auth_emulator, tasks_emulator
from local.stack import Ports, Stack
from tests.e2e.client import Api
from tests.helpers import TEST_SLOT, TestServer, state_dir

# Far from the ports `make run` uses, so the tests run beside a developer's stack.
E2E_PORTS = Ports.offset(1000 + 100 * TEST_SLOT)
E2E_ENV = {
    # Short offsets so a reminder is due within the test; see tests/e2e/test_notifications.py.
    "REMINDER_OFFSETS": os.environ.get("E2E_REMINDER_OFFSETS", "24h,20s"),
    # The outbox sweep every second (Cloud Scheduler: every minute), so a dispatch that
    # failed is retried within the test.
    "SWEEP_INTERVAL": "1",
    # A notification's last attempt within the test (the default, 30, spans hours).
    "TASKS_MAX_ATTEMPTS": "8",
    # Above what the access matrix's one patient comes to hold (~16), so no cell meets
    # the cap; tests/e2e/test_booking_flows.py books up to it.
    "MAX_UPCOMING_APPOINTMENTS": "30",
    # Above what any other test's patient changes (the cap test above: ~32), so only
    # tests/e2e/test_booking_flows.py meets it, on purpose.
    "MAX_CHANGES_PER_HOUR": "60",
    # An offer holds its slot 15 s, so tests/e2e/test_waitlist.py sees the expiry task work.
    "HOLD_MINUTES": "0.25",
}


@pytest.fixture(scope="session")
def stack(pg_server: TestServer) -> Iterator[Stack]:
    name = "e2e"
    pg_server.drop(name)
    pg_server.create(name)
    state = state_dir("stack")
    # Mail of earlier runs would only slow down the tests that read the sink; their queued
    # reminders (kept across restarts) are for appointments of a database dropped above.
    shutil.rmtree(state / "mail", ignore_errors=True)
    (state / tasks_emulator.STORE).unlink(missing_ok=True)
    running = Stack(
        state=state,
        ports=E2E_PORTS,
        database_url=pg_server.url(name),
        workers=1,
        threads=8,
        extra_env=dict(E2E_ENV),
    )
    running.start()
    # The emulator's port opens a moment before its demo users exist.
    auth_emulator.wait_for_users(running.ports.auth)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def api(stack: Stack) -> Api:
    return Api(stack.url("gateway"), stack.state)


@pytest.fixture(scope="session")
def app_url(stack: Stack) -> str:
    """The web app (and the API beside it): the gateway serves web/dist at /."""
    return stack.url("gateway") + "/"


@pytest.fixture(scope="session")
def auth_port(stack: Stack) -> int:
    """The Firebase Auth emulator the app signs in against (its /config.json names it)."""
    return stack.ports.auth
