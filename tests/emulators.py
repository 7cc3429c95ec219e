"""Real emulators and receivers for the integration tests, as child processes.

The same commands the local stack runs (local/tasks_emulator.py, local/pubsub_emulator.py,
local/mailsink.py), on free ports, each in its own process group and stopped with it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from local import pubsub_emulator, tasks_emulator
from local.paths import ROOT
from local.postgres import port_open
from local.stack import stop_process


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def child(argv: list[str], port: int, log: Path, timeout: float = 60.0) -> Iterator[subprocess.Popen[bytes]]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while not port_open(port):
            if process.poll() is not None:
                raise RuntimeError(f"{argv[:3]} exited; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[:3]} did not open port {port}; see {log}")
            time.sleep(0.1)
        yield process
    finally:
        stop_process(process)


@contextmanager
def cloud_tasks(
    log_dir: Path, port: int | None = None, max_attempts: int = 8, store: Path | None = None, target: str | None = None
) -> Iterator[str]:
    """The Cloud Tasks emulator with the notify queue (kept in `store`); yields its host:port."""
    port = port or free_port()
    argv = tasks_emulator.command(
        port, max_attempts=max_attempts, min_backoff=0.2, max_backoff=1.0, store=store, target=target
    )
    if argv is None:
        raise RuntimeError("the Cloud Tasks emulator could not be installed")
    with child(argv, port, log_dir / f"tasks-{port}.log"):
        yield f"127.0.0.1:{port}"


@contextmanager
def pubsub(log_dir: Path) -> Iterator[str]:
    """Google's Pub/Sub emulator with the topic and the dev subscription; yields host:port."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "local.pubsub_emulator",
        "--port",
        str(port),
        "--data-dir",
        str(log_dir / f"pubsub-{port}"),
    ]
    with child(argv, port, log_dir / f"pubsub-{port}.log"):
        host = f"127.0.0.1:{port}"
        pubsub_emulator.ensure_topic(host)
        yield host


@contextmanager
def mail_sink(folder: Path, port: int | None = None) -> Iterator[int]:
    port = port or free_port()
    argv = [sys.executable, "-m", "local.mailsink", "--port", str(port), "--dir", str(folder)]
    with child(argv, port, folder.parent / f"mailsink-{port}.log"):
        yield port


class Recorder:
    """An HTTP endpoint standing in for notify: records each request, answers `status`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with recorder._lock:
                    recorder.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": json.loads(body or b"null"),
                            "at": time.time(),
                        }
                    )
                self.send_response(recorder.status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tasks/notify"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.05)
        with self._lock:
            return list(self.requests)


# The Pub/Sub emulator ships with the gcloud CLI. Where gcloud is missing, the stack
# runs without it and events wait in the outbox; the tests that read events say so.
needs_gcloud = pytest.mark.skipif(
    pubsub_emulator.gcloud() is None, reason="gcloud is not installed: no Pub/Sub emulator"
)
