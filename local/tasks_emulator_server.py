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
  looked at, so thousands of far-off reminders cost nothing;
- it keeps tasks in memory only, so a restart lost every queued reminder; with --store
  here every change is appended to a file and replayed at start (decision 0012): a
  task is kept until an attempt ends it (so one cut off by a crash is sent again, as
  Cloud Tasks delivers at least once), with its retry count and schedule, and a
  finished task's name is refused for a day, as Cloud Tasks refuses it for a while.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import threading
import time
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib import error, request
from urllib.parse import urlsplit, urlunsplit

import grpc  # type: ignore[import-not-found, unused-ignore]
from gcloud_tasks_emulator import server  # type: ignore[import-not-found, unused-ignore]
from gcloud_tasks_emulator.__main__ import main as emulator_main  # type: ignore[import-not-found, unused-ignore]
from google.api_core.exceptions import AlreadyExists, NotFound  # type: ignore[import-not-found, unused-ignore]
from google.cloud.tasks_v2 import Task  # type: ignore[import-not-found, unused-ignore]

HOST = "127.0.0.1"
log = logging.getLogger("gcloud-tasks-emulator")
_options: dict[str, Any] = {"min_backoff": 1.0, "max_backoff": 10.0, "max_concurrent": 8, "store": None, "target": None}
# How long a finished task's name stays taken (Cloud Tasks: about an hour, up to 9 days).
NAME_KEPT_S = 24 * 3600


def _epoch(value: Any) -> float:
    return value.timestamp() if value else 0.0


class Store:
    """The queues on disk: one JSON line per change, appended before the change is
    answered; at start the lines are replayed and written again compacted.

    {"put": queue, "task": base64} adds or replaces a task (created, or rescheduled for
    a retry); {"done": name, "at": epoch} ends one (delivered, given up, purged).
    """

    def __init__(self, path: Path, target: str | None = None) -> None:
        self.path = path
        self.target = target
        self.waiting: dict[str, dict[str, Any]] = {}  # queue -> name -> task, until the queue exists
        self.finished: dict[str, float] = {}
        self.appended = 0
        self._load()
        self._file = self._open()

    def _load(self) -> None:
        tasks: dict[str, tuple[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_bytes().splitlines():
                try:
                    record = json.loads(line)
                    if "put" in record:
                        task = Task.deserialize(base64.b64decode(record["task"]))
                        tasks[task.name] = (record["put"], task)
                        self.finished.pop(task.name, None)
                    else:
                        tasks.pop(record["done"], None)
                        self.finished[record["done"]] = float(record["at"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash: nothing was answered for it
        cutoff = time.time() - NAME_KEPT_S
        self.finished = {name: at for name, at in self.finished.items() if at >= cutoff}
        for queue, task in tasks.values():
            self._retarget(task)
            self.waiting.setdefault(queue, {})[task.name] = task
        log.info("[STORE] %d task(s) restored from %s", len(tasks), self.path)

    def _retarget(self, task: Any) -> None:
        """A stack moved by CLINIC_PORT_OFFSET keeps its tasks for its own notify, whose
        port moved too: a task addressed to this machine goes to the current target."""
        if not self.target or not task.http_request.url:
            return
        url, target = urlsplit(task.http_request.url), urlsplit(self.target)
        if url.hostname in ("127.0.0.1", "localhost", "::1"):
            task.http_request.url = urlunsplit(url._replace(scheme=target.scheme, netloc=target.netloc))

    def _open(self) -> Any:
        self.compact([(q, t) for q, named in self.waiting.items() for t in named.values()])
        return self.path.open("ab", buffering=0)

    def _append(self, record: dict[str, Any]) -> None:
        # One write each, unbuffered: a crash of this process loses nothing answered.
        self._file.write(json.dumps(record).encode() + b"\n")
        self.appended += 1

    def put(self, queue: str, task: Any) -> None:
        self.finished.pop(task.name, None)
        self._append({"put": queue, "task": base64.b64encode(Task.serialize(task)).decode()})

    def done(self, name: str) -> None:
        self.finished[name] = time.time()
        self._append({"done": name, "at": self.finished[name]})

    def claim(self, queue: str) -> list[Any]:
        """The stored tasks of a queue that now exists."""
        return list(self.waiting.pop(queue, {}).values())

    def compact(self, live: list[tuple[str, Any]]) -> None:
        """The file rewritten with only what is live (and the names still taken)."""
        cutoff = time.time() - NAME_KEPT_S
        self.finished = {name: at for name, at in self.finished.items() if at >= cutoff}
        live = live + [(q, t) for q, named in self.waiting.items() for t in named.values()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("wb") as out:
            for name, at in self.finished.items():
                out.write(json.dumps({"done": name, "at": at}).encode() + b"\n")
            for queue, task in live:
                out.write(json.dumps({"put": queue, "task": base64.b64encode(Task.serialize(task)).decode()}).encode())
                out.write(b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        if hasattr(self, "_file"):
            self._file.close()
            self._file = self.path.open("ab", buffering=0)
        self.appended = 0

    def due_for_compaction(self, live: int) -> bool:
        return self.appended > max(10_000, 4 * (live + len(self.finished)))


class QueueState(server.QueueState):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._names: set[str] = set()
        # When each waiting task is due (epoch seconds), read without touching protobufs.
        self.due: dict[str, float] = {}
        # Tasks taken out of their queue for an attempt, still stored until it ends.
        self._inflight: dict[str, tuple[str, Any]] = {}
        self.store: Store | None = None
        if _options["store"]:
            self.store = Store(Path(_options["store"]), _options["target"])
            self._names.update(self.store.finished)

    def create_queue(self, parent: Any, queue: Any) -> Any:
        with self._lock:
            created = super().create_queue(parent, queue)
            for task in self.store.claim(queue.name) if self.store else []:
                self._queue_tasks[queue.name].append(task)
                self._names.add(task.name)
                self.due[task.name] = _epoch(task.schedule_time) or time.time()
            return created

    def create_task(self, queue: str, task: Any) -> Any:
        with self._lock:
            if task.name and task.name in self._names:
                raise AlreadyExists(f"Requested entity already exists: {task.name}")  # type: ignore[no-untyped-call, unused-ignore]
            task = super().create_task(queue, task)
            self._names.add(task.name)
            self.due[task.name] = _epoch(task.schedule_time) or time.time()
            if self.store is not None:
                self.store.put(queue, task)
                self._maybe_compact()
            return task

    def _maybe_compact(self) -> None:
        """With the lock held."""
        assert self.store is not None
        live = sum(len(tasks) for tasks in self._queue_tasks.values()) + len(self._inflight)
        if self.store.due_for_compaction(live):
            queued = [(queue, task) for queue, tasks in self._queue_tasks.items() for task in tasks]
            self.store.compact(queued + list(self._inflight.values()))

    def _ended(self, task_name: str) -> None:
        """With the lock held: an attempt ended the task (delivered, or given up)."""
        self._inflight.pop(task_name, None)
        if self.store is not None:
            self.store.done(task_name)

    def purge_queue(self, queue_name: str) -> Any:
        with self._lock:
            for task in self._queue_tasks.get(queue_name, []):
                self.due.pop(task.name, None)
                if self.store is not None:
                    self.store.done(task.name)
            return super().purge_queue(queue_name)

    def delete_queue(self, name: str) -> None:
        if name in self._queues:
            self.purge_queue(name)
        with self._lock:
            super().delete_queue(name)

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
            self._inflight[task_name] = (queue, task)
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
            with self._lock:
                self._ended(task_name)
            return task
        if self._max_retries >= 0 and task.dispatch_count > self._max_retries:
            log.info("[TASKS] Giving up %s after %d attempts", task_name, task.dispatch_count)
            with self._lock:
                self._ended(task_name)
            return task
        delay = min(_options["max_backoff"], _options["min_backoff"] * 2 ** (task.dispatch_count - 1))
        task.schedule_time = datetime.now(UTC) + timedelta(seconds=delay)
        with self._lock:
            self._inflight.pop(task_name, None)
            if queue in self._queue_tasks:
                self._queue_tasks[queue].append(task)
                self.due[task_name] = time.time() + delay
                if self.store is not None:
                    self.store.put(queue, task)  # its retry count and next attempt
            elif self.store is not None:
                self.store.done(task_name)
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
    parser.add_argument("--store", help="a file that keeps the queues across restarts (default: memory only)")
    parser.add_argument("--target", help="where a restored task for this machine goes now (http://host:port)")
    ours, rest = parser.parse_known_args(argv)
    _options.update(
        min_backoff=ours.min_backoff,
        max_backoff=ours.max_backoff,
        max_concurrent=max(1, ours.max_concurrent_dispatches),
        store=ours.store,
        target=ours.target,
    )
    server.QueueState = QueueState
    server.Processor = Processor
    server.APIThread = APIThread
    sys.argv = ["gcloud-tasks-emulator", *rest]
    emulator_main()


if __name__ == "__main__":
    main()
