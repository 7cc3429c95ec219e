"""The Cloud Tasks emulator (gcloud-tasks-emulator), closer to the real service.

Runs inside .venv-tasks (the emulator pins an old protobuf), so it imports nothing
of ours. The package provides the gRPC API and the queue storage; this wrapper
replaces how tasks are dispatched. What the stock emulator does differently from
Cloud Tasks, and what changes here (what remains is in local/tasks_emulator.py):

- it listens on every interface ([::]); here only on the loopback address;
- it accepts a second task with the name of an existing or finished one; Cloud Tasks
  answers ALREADY_EXISTS, and so does this wrapper (deterministic names rely on it);
- it retries a failed task every 0.1 s; here with Cloud Tasks' exponential backoff
  (--min-backoff doubling up to --max-backoff);
- it dispatches one task at a time, with no timeout; here up to
  --max-concurrent-dispatches at once, each cut at the task's dispatch_deadline;
- it counts 3xx and the like as success; here only 2xx is, as in Cloud Tasks;
- it rescans every waiting task ten times a second; here only the due ones are
  looked at, so thousands of far-off reminders cost nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from concurrent import futures
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib import error, request

import grpc  # type: ignore[import-not-found, unused-ignore]
from gcloud_tasks_emulator import server  # type: ignore[import-not-found, unused-ignore]
from gcloud_tasks_emulator.__main__ import main as emulator_main  # type: ignore[import-not-found, unused-ignore]
from google.api_core.exceptions import AlreadyExists, NotFound  # type: ignore[import-not-found, unused-ignore]

HOST = "127.0.0.1"
log = logging.getLogger("gcloud-tasks-emulator")
_options = {"min_backoff": 1.0, "max_backoff": 10.0, "max_concurrent": 8}


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
        """One attempt of a task (the processor's, or RunTask's with force_run)."""
        queue = task_name.rsplit("/", 2)[0]
        with self._lock:
            tasks = self._queue_tasks.get(queue)
            if tasks is None:
                raise ValueError(f"{queue!r} is not a valid queue name")
            index = next((i for i, t in enumerate(tasks) if t.name == task_name), None)
            if index is None:
                raise NotFound(f"Task not found: {task_name}")  # type: ignore[no-untyped-call, unused-ignore]
            task = tasks[index]
            if not force_run and self.due.get(task_name, 0.0) > time.time():
                return task
            tasks.pop(index)
            self.due.pop(task_name, None)
            task.dispatch_count += 1
        dispatched = datetime.now(UTC)
        status = _request(queue, task)
        attempt = server.Attempt(
            schedule_time=task.schedule_time,
            dispatch_time=dispatched,
            response_time=datetime.now(UTC),
            response_status={"code": status},
        )
        task.first_attempt = task.first_attempt or attempt
        task.last_attempt = attempt
        if 200 <= status < 300:
            return task
        if self._max_retries >= 0 and task.dispatch_count > self._max_retries:
            log.info("[TASKS] Giving up %s after %d attempts", task_name, task.dispatch_count)
            return task
        delay = min(_options["max_backoff"], _options["min_backoff"] * 2 ** (task.dispatch_count - 1))
        task.schedule_time = datetime.now(UTC) + timedelta(seconds=delay)
        with self._lock:
            if queue in self._queue_tasks:
                self._queue_tasks[queue].append(task)
                self.due[task_name] = time.time() + delay
        log.info("[TASKS] %s answered %d; retry in %.1f s", task_name, status, delay)
        return task


def _request(queue_name: str, task: Any) -> int:
    """Cloud Tasks' HTTP request with its headers; the response's status (0: no response)."""
    http = task.http_request
    headers = dict(http.headers)
    headers.update(
        {
            "X-CloudTasks-QueueName": queue_name.rsplit("/", 1)[-1],
            "X-CloudTasks-TaskName": task.name.rsplit("/", 1)[-1],
            "X-CloudTasks-TaskRetryCount": str(task.dispatch_count - 1),
            "X-CloudTasks-TaskExecutionCount": str(task.dispatch_count - 1),
            "X-CloudTasks-TaskETA": f"{_epoch(task.schedule_time):.6f}",
        }
    )
    deadline = task.dispatch_deadline.total_seconds() if task.dispatch_deadline else 600.0
    req = request.Request(  # noqa: S310 - the task's own target, as Cloud Tasks calls it
        http.url, method=http.http_method.name, data=http.body or None, headers=headers
    )
    try:
        with request.urlopen(req, timeout=deadline) as response:  # noqa: S310 - as above
            status: int = response.status
            return status
    except error.HTTPError as failure:
        return failure.code
    except (OSError, error.URLError) as failure:
        log.info("[TASKS] %s: no response (%s)", task.name, failure)
        return 0


class Processor(server.Processor):  # type: ignore[misc]
    def _process_queue(self, queue: str) -> None:
        state: QueueState = self._state
        inflight: set[str] = set()
        lock = threading.Lock()
        pool = futures.ThreadPoolExecutor(max_workers=int(_options["max_concurrent"]))

        def attempt(name: str) -> None:
            try:
                state.submit_task(name)
            except Exception:
                log.exception("[TASKS] dispatch of %s failed", name)
            finally:
                with lock:
                    inflight.discard(name)

        while self._is_running.is_set():
            if queue not in state._queues or queue not in state._queue_tasks:
                break
            if state.queue(queue).state == server.Queue.State.RUNNING:
                now = time.time()
                with lock:
                    due = sorted(
                        (at, name)
                        for name, at in list(state.due.items())
                        if at <= now and name not in inflight and name.startswith(queue + "/")
                    )
                    inflight.update(name for _, name in due)
                for _, name in due:
                    pool.submit(attempt, name)
            time.sleep(server._LOOP_SLEEP_TIME)
        pool.shutdown(wait=False, cancel_futures=True)


class APIThread(server.APIThread):  # type: ignore[misc]
    def run(self) -> None:
        self._httpd = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        server.add_CloudTasksServicer_to_server(server.Greeter(self._state), self._httpd)
        self._httpd.add_insecure_port(f"{HOST}:{self._port}")
        log.info("[API] Starting API server at %s:%s", HOST, self._port)
        self._httpd.start()
        self._is_running.set()
        while self._is_running.is_set():
            time.sleep(server._LOOP_SLEEP_TIME)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--min-backoff", type=float, default=1.0)
    parser.add_argument("--max-backoff", type=float, default=10.0)
    parser.add_argument("--max-concurrent-dispatches", type=int, default=8)
    ours, rest = parser.parse_known_args(argv)
    _options.update(
        min_backoff=ours.min_backoff,
        max_backoff=ours.max_backoff,
        max_concurrent=max(1, ours.max_concurrent_dispatches),
    )
    server.QueueState = QueueState
    server.Processor = Processor
    server.APIThread = APIThread
    sys.argv = ["gcloud-tasks-emulator", *rest]
    emulator_main()


if __name__ == "__main__":
    main()
