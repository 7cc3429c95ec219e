"""The Cloud Tasks emulator keeps its queue across restarts (decision 0012): killed with
tasks waiting, started again on the same store, it delivers every one of them once."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

from local.tasks_emulator import QUEUE
from tests.emulators import Recorder, cloud_tasks, free_port

# What the emulator must still hold after a restart: far-off reminders and soon-due ones.
FAR, SOON = 50, 3


def client(host: str) -> tasks_v2.CloudTasksClient:
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(host)))


def create(host: str, name: str, url: str, due: datetime) -> None:
    client(host).create_task(
        parent=QUEUE,
        task={
            "name": f"{QUEUE}/tasks/{name}",
            "schedule_time": due,
            "http_request": {"http_method": "POST", "url": url, "body": json.dumps({"n": name}).encode()},
        },
    )


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as endpoint:
        yield endpoint


def kill(host_port: int) -> None:
    """SIGKILL to the emulator listening on this port: no chance to save anything."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "local.tasks_emulator_server" in cmdline and str(host_port) in cmdline:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            return
    raise AssertionError("no emulator on that port")


def names(requests: list[dict[str, Any]]) -> list[str]:
    return sorted(r["body"]["n"] for r in requests)


def test_tasks_survive_a_killed_emulator_and_are_delivered_once(tmp_path: Path, recorder: Recorder) -> None:
    store = tmp_path / "tasks-queue.jsonl"
    port = free_port()
    now = datetime.now(UTC)
    with cloud_tasks(tmp_path, port=port, store=store) as host:
        create(host, "now", recorder.url, now)
        assert names(recorder.wait_for(1)) == ["now"]
        for n in range(SOON):
            create(host, f"soon-{n}", recorder.url, now + timedelta(seconds=6))
        for n in range(FAR):
            create(host, f"far-{n}", recorder.url, now + timedelta(days=1))
        kill(port)
        assert names(recorder.requests) == ["now"]
    with cloud_tasks(tmp_path, port=port, store=store) as host:
        delivered = recorder.wait_for(1 + SOON, timeout=20)
        assert names(delivered) == sorted(["now"] + [f"soon-{n}" for n in range(SOON)])
        listed = client(host).list_tasks(parent=QUEUE)
        assert sorted(t.name.rsplit("/", 1)[-1] for t in listed) == sorted(f"far-{n}" for n in range(FAR))
        # The names stay taken, as in Cloud Tasks: the outbox's deterministic names rely on it.
        for taken in ("now", "far-0"):
            with pytest.raises(exceptions.AlreadyExists):
                create(host, taken, recorder.url, now)
        time.sleep(1)
        assert len(recorder.requests) == 1 + SOON  # nothing delivered twice


def test_a_restored_task_follows_its_target_when_the_stack_moved(tmp_path: Path) -> None:
    """A stack started again with another CLINIC_PORT_OFFSET: its notify moved, and so do its tasks."""
    store = tmp_path / "tasks-queue.jsonl"
    port = free_port()
    with Recorder() as old, Recorder() as new:
        with cloud_tasks(tmp_path, port=port, store=store) as host:
            create(host, "moved", old.url, datetime.now(UTC) + timedelta(seconds=3))
        target = new.url.rsplit("/tasks/", 1)[0]
        with cloud_tasks(tmp_path, port=port, store=store, target=target):
            assert names(new.wait_for(1, timeout=15)) == ["moved"]
        assert old.requests == []


def test_a_retry_keeps_its_count_across_a_restart(tmp_path: Path, recorder: Recorder) -> None:
    store = tmp_path / "tasks-queue.jsonl"
    port = free_port()
    recorder.status = 503
    with cloud_tasks(tmp_path, port=port, store=store, max_attempts=8) as host:
        create(host, "retried", recorder.url, datetime.now(UTC))
        assert len(recorder.wait_for(2)) >= 2
        kill(port)
    before = len(recorder.requests)
    recorder.status = 200
    with cloud_tasks(tmp_path, port=port, store=store):
        after = recorder.wait_for(before + 1)
    retry_counts = [int(r["headers"]["x-cloudtasks-taskretrycount"]) for r in after]
    assert retry_counts == list(range(len(after)))  # counted on, not from 0 again
