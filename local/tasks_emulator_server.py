"""The Cloud Tasks emulator (gcloud-tasks-emulator), closer to the real service.

Runs inside .venv-tasks (the emulator pins an old protobuf), so it imports nothing
of ours. What the stock emulator does differently from Cloud Tasks, and what this
wrapper changes (the rest is documented in local/tasks_emulator.py):

- it listens on every interface ([::]); here only on the loopback address;
- it accepts a second task with the name of an existing or finished one; Cloud Tasks
  answers ALREADY_EXISTS, and so does this wrapper (deterministic names rely on it);
- it retries a failed task every 0.1 s; here with Cloud Tasks' exponential backoff
  (--min-backoff doubling up to --max-backoff);
- its HTTP request has no timeout; here the task's dispatch_deadline;
- it rescans every waiting task ten times a second; here only the due ones are
  looked at, so thousands of far-off reminders cost nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib import request

import grpc  # type: ignore[import-not-found, unused-ignore]
from gcloud_tasks_emulator import server  # type: ignore[import-not-found, unused-ignore]
from gcloud_tasks_emulator.__main__ import main as emulator_main  # type: ignore[import-not-found, unused-ignore]
from google.api_core.exceptions import AlreadyExists  # type: ignore[import-not-found, unused-ignore]

HOST = "127.0.0.1"
log = logging.getLogger("gcloud-tasks-emulator")
_backoff = {"min": 1.0, "max": 10.0}


def _epoch(value: Any) -> float:
    return value.timestamp() if value else 0.0


class QueueState(server.QueueState):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._names: set[str] = set()
        # When each waiting task is due (epoch seconds), read without touching protobufs.
        self.due: dict[str, float] = {}

    def create_task(self, queue: str, task: Any) -> Any:
        with self._lock:
            if task.name and task.name in self._names:
                raise AlreadyExists(f"Requested entity already exists: {task.name}")  # type: ignore[no-untyped-call, unused-ignore]
            task = super().create_task(queue, task)
            self._names.add(task.name)
            self.due[task.name] = _epoch(task.schedule_time) or time.time()
            return task

    def submit_task(self, task_name: str, force_run: bool = False) -> Any:
        _outcomes.pop(task_name, None)
        task = super().submit_task(task_name, force_run)
        outcome = _outcomes.pop(task_name, None)
        if outcome is None:  # not due yet: the emulator put it back unchanged
            self.due[task_name] = _epoch(task.schedule_time)
        elif outcome == "failed" and (self._max_retries < 0 or task.dispatch_count <= self._max_retries):
            self.due[task_name] = _epoch(task.schedule_time)  # put back, after the backoff
        else:
            self.due.pop(task_name, None)
        return task


# task name -> "ok" or "failed", set by the request of the attempt just made.
_outcomes: dict[str, str] = {}


def _make_task_request(queue_name: str, task: Any, host: str, port: int) -> Any:
    """Cloud Tasks' HTTP request: its headers, the dispatch deadline, backoff on failure."""
    http = task.http_request
    headers = dict(http.headers)
    headers.update({
        "X-CloudTasks-QueueName": queue_name.rsplit("/", 1)[-1],
        "X-CloudTasks-TaskName": task.name.rsplit("/", 1)[-1],
        "X-CloudTasks-TaskRetryCount": str(task.dispatch_count - 1),
        "X-CloudTasks-TaskExecutionCount": str(task.dispatch_count - 1),
        "X-CloudTasks-TaskETA": f"{_epoch(task.schedule_time):.6f}",
    })
    deadline = task.dispatch_deadline.total_seconds() if task.dispatch_deadline else 600.0
    req = request.Request(  # noqa: S310 - the task's own target, as Cloud Tasks calls it
        http.url, method=http.http_method.name, data=http.body or None, headers=headers)
    try:
        response = request.urlopen(req, timeout=deadline)  # noqa: S310 - the URL is the task's target
        _outcomes[task.name] = "ok"
        return response
    except Exception:
        _outcomes[task.name] = "failed"
        delay = min(_backoff["max"], _backoff["min"] * 2 ** max(0, task.dispatch_count - 1))
        task.schedule_time = datetime.now(UTC) + timedelta(seconds=delay)
        raise


class Processor(server.Processor):  # type: ignore[misc]
    def _process_queue(self, queue: str) -> None:
        state: QueueState = self._state
        while self._is_running.is_set():
            if queue not in state._queues or queue not in state._queue_tasks:
                break
            if state.queue(queue).state == server.Queue.State.RUNNING:
                now = time.time()
                due = sorted((at, name) for name, at in list(state.due.items())
                             if at <= now and name.startswith(queue + "/"))
                for _, name in due:
                    try:
                        state.submit_task(name)
                    except Exception:
                        log.exception("[TASKS] dispatch of %s failed", name)
            time.sleep(server._LOOP_SLEEP_TIME)


class APIThread(server.APIThread):  # type: ignore[misc]
    def run(self) -> None:
        from concurrent import futures

        self._httpd = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        server.add_CloudTasksServicer_to_server(server.Greeter(self._state), self._httpd)
        self._httpd.add_insecure_port(f"{HOST}:{self._port}")
        log.info("[API] Starting API server at %s:%s", HOST, self._port)
        self._httpd.start()
        self._is_running.set()
        while self._is_running.is_set():
            time.sleep(server._LOOP_SLEEP_TIME)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-backoff", type=float, default=1.0)
    parser.add_argument("--max-backoff", type=float, default=10.0)
    ours, rest = parser.parse_known_args(argv)
    _backoff.update(min=ours.min_backoff, max=ours.max_backoff)
    server.QueueState = QueueState
    server.Processor = Processor
    server.APIThread = APIThread
    server._make_task_request = _make_task_request
    sys.argv = ["gcloud-tasks-emulator", *rest]
    emulator_main()


if __name__ == "__main__":
    main()
