"""A booking's trace carried on (issue 17 §2), and the outbox's calls made at once
(decision 0014): no database, no emulator."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any

import pytest

from shared import dispatch, logs, mail
from shared.settings import Settings
from tests.log_lines import captured

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SETTINGS = Settings(tasks_queue="projects/p/locations/l/queues/q", notify_url="https://n.example/tasks/notify")


@pytest.fixture(autouse=True)
def no_trace() -> Iterator[None]:
    yield
    logs.set_trace(None)


@pytest.mark.parametrize(
    "header",
    [
        f"{TRACE}/1;o=1",  # X-Cloud-Trace-Context
        f"{TRACE}/17216107049839583251",
        f"00-{TRACE}-00f067aa0ba902b7-01",  # traceparent
    ],
)
def test_the_trace_id_is_read_from_either_header(header: str) -> None:
    logs.set_trace(header)
    assert logs.trace_id() == TRACE


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "not-a-trace",
        f"{TRACE[:-1]}/1",  # 31 digits
        "0" * 32 + "/1",  # W3C: all zero is invalid
        f"{TRACE.upper()}/1",
        f"{TRACE}\r\nX-Injected: 1/1",
        f"00-{TRACE}x-00f067aa0ba902b7-01",
    ],
)
def test_a_malformed_trace_is_not_carried_on(header: str | None) -> None:
    logs.set_trace(header)
    assert logs.trace_id() is None


def test_the_headers_made_for_a_task_read_back_as_the_same_trace() -> None:
    headers = logs.trace_headers(TRACE)
    version, trace, span, flags = headers["traceparent"].split("-")
    assert (version, trace, flags) == ("00", TRACE, "01") and len(span) == 16 and int(span, 16) > 0
    context_trace, _, rest = headers["X-Cloud-Trace-Context"].partition("/")
    assert context_trace == TRACE and rest.endswith(";o=1") and rest[:-4].isdigit()
    # What the notify function reads from either header, as it reads a request's.
    for name in ("traceparent", "X-Cloud-Trace-Context"):
        logs.set_trace(headers[name])
        assert logs.trace_id() == TRACE


def test_log_lines_carry_the_trace_in_cloud_loggings_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "clinic-prod")
    logs.set_trace(f"{TRACE}/1;o=1")
    with captured("clinic.trace-test") as lines:
        logs.get("clinic.trace-test").info("hello")
    assert lines[0]["logging.googleapis.com/trace"] == f"projects/clinic-prod/traces/{TRACE}"


def test_a_task_carries_its_rows_trace_as_headers() -> None:
    row = {"name": "a-confirmation-1-2", "deliver_at": datetime.now(UTC), "payload": {"kind": "CONFIRMATION"}}
    untraced = dispatch.task_request(SETTINGS, {**row, "trace": None})["http_request"]["headers"]
    assert untraced == {"Content-Type": "application/json"}
    headers = dispatch.task_request(SETTINGS, {**row, "trace": TRACE})["http_request"]["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["traceparent"].split("-")[1] == TRACE
    assert headers["X-Cloud-Trace-Context"].startswith(f"{TRACE}/")


def _notice(trace: str | None) -> mail.Notice:
    start = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    return mail.Notice(
        kind="CONFIRMATION",
        message_key="k-confirmation-1-2",
        appointment_id="6b1f5c2e-0000-4000-8000-000000000001",
        recipient="pat@example.com",
        patient_name="Pat",
        doctor_name="Dr. Who",
        timezone="UTC",
        start=start,
        end=start.replace(minute=30),
        trace=trace,
    )


def test_the_email_carries_the_trace() -> None:
    settings = Settings(mail_from="clinic@example.com")
    message = mail.compose(_notice(TRACE), settings)
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["X-Clinic-Trace"] == TRACE
    assert "X-Clinic-Trace" not in mail.compose(_notice(None), settings)


def _rows(count: int) -> list[dict[str, Any]]:
    return [{"id": i, "target": "TASK", "name": f"t{i}"} for i in range(1, count + 1)]


def test_a_changes_tasks_are_created_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each call waits until all three are in flight: passes only if they run concurrently.
    together = threading.Barrier(3, timeout=10)
    monkeypatch.setattr(dispatch, "_create_task", lambda settings, row: together.wait())
    sent, failed, timed_out = dispatch._create_tasks(SETTINGS, _rows(3))
    assert sorted(sent) == [1, 2, 3] and failed == {} and not timed_out


def test_once_cloud_tasks_is_unreachable_the_rest_are_not_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.api_core import exceptions

    tried: list[int] = []
    first = threading.Event()

    def create(settings: Settings, row: dict[str, Any]) -> None:
        tried.append(row["id"])
        if row["id"] == 1:
            first.set()
            raise exceptions.ServiceUnavailable("down")  # type: ignore[no-untyped-call]
        raise AssertionError("not to be tried")

    monkeypatch.setattr(dispatch, "_create_task", create)
    # One worker, busy until the first call has failed: the others start after it.
    monkeypatch.setattr(dispatch, "_pool", lambda: _SerialPool())
    sent, failed, timed_out = dispatch._create_tasks(SETTINGS, _rows(3))
    assert tried == [1] and sent == [] and list(failed) == [1] and not timed_out
    assert failed[1].startswith("ServiceUnavailable")


def test_a_refused_task_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.api_core import exceptions

    def create(settings: Settings, row: dict[str, Any]) -> None:
        if row["id"] == 2:
            raise exceptions.InvalidArgument("bad schedule")  # type: ignore[no-untyped-call]

    monkeypatch.setattr(dispatch, "_create_task", create)
    sent, failed, timed_out = dispatch._create_tasks(SETTINGS, _rows(4))
    assert sorted(sent) == [1, 3, 4] and list(failed) == [2] and not timed_out


def test_a_call_that_timed_out_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.api_core import exceptions

    def create(settings: Settings, row: dict[str, Any]) -> None:
        raise exceptions.DeadlineExceeded("slow")  # type: ignore[no-untyped-call]

    monkeypatch.setattr(dispatch, "_create_task", create)
    sent, failed, timed_out = dispatch._create_tasks(SETTINGS, _rows(1))
    assert sent == [] and list(failed) == [1] and timed_out


class _SerialPool:
    """Runs each submitted call at once, in order: a pool of one that is never idle."""

    def submit(self, fn: Any, *args: Any) -> Any:
        from concurrent.futures import Future

        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future
