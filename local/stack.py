"""The whole local stack as child processes: what `make run` and the e2e tests start.

PostgreSQL (embedded unless DATABASE_URL is set), migrations, demo data on first
run, the four functions under functions-framework, and the local gateway. Every
child runs in its own process group so stopping the stack leaves no orphans.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local import extensions, keys, running
from local.paths import ROOT, STATE, WEB_DIST
from local.postgres import DEFAULT_PORT, EmbeddedPostgres, connect_native, port_open

FUNCTIONS = ("slots", "book", "cancel", "notify")


@dataclass
class Ports:
    gateway: int = 8080
    slots: int = 8081
    book: int = 8082
    cancel: int = 8083
    notify: int = 8084
    postgres: int = DEFAULT_PORT
    tasks: int = 8123
    pubsub: int = 8085
    smtp: int = 1025
    # The Firebase Auth emulator, and the hub and logging ports its CLI opens beside it.
    auth: int = 9099
    auth_hub: int = 9100
    auth_logging: int = 9101

    @classmethod
    def offset(cls, by: int) -> Ports:
        base = cls()
        return cls(**{name: value + by for name, value in vars(base).items()})


@dataclass
class Service:
    name: str
    argv: list[str]
    port: int | None
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Ends a child and its whole process group: TERM, then KILL after 10 s."""
    stop_processes([process])


def stop_processes(processes: list[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    """Ends children and their process groups together: TERM to all, then KILL to those
    still running after `grace` seconds, so stopping a stack takes one grace, not one
    per service (the emulators can each take seconds to exit)."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


class AlreadyRunning(RuntimeError):
    pass


@dataclass
class Stack:
    state: Path = STATE
    ports: Ports = field(default_factory=Ports)
    database_url: str | None = field(default_factory=lambda: os.environ.get("DATABASE_URL"))
    workers: int = int(os.environ.get("WORKERS", "2"))
    threads: int = int(os.environ.get("THREADS", "8"))
    # Which functions to start; a benchmark starts only the ones it measures.
    functions: tuple[str, ...] = FUNCTIONS
    extra_env: dict[str, str] = field(default_factory=dict)
    seed: bool = True
    services: list[Service] = field(default_factory=list)
    postgres: EmbeddedPostgres | None = None
    # Hooks that add services (emulators, mail sink, timers) before the functions start.
    extensions: list[Callable[[Stack], None]] = field(default_factory=lambda: extensions.default())
    # What extensions add to the local gateway's configuration (the app's /config.json,
    # the auth emulator's project whose unsigned tokens it then takes).
    gateway_config: dict[str, Any] = field(default_factory=dict)

    @property
    def pid_file(self) -> Path:
        return self.state / "stack.pid"

    @property
    def log_dir(self) -> Path:
        return self.state / "logs"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{getattr(self.ports, name)}"

    # -- lifecycle ------------------------------------------------------------------

    def claim(self) -> None:
        """Refuses to start a second stack on the same state folder or ports."""
        self.state.mkdir(parents=True, exist_ok=True)
        if self.pid_file.exists():
            try:
                pid = int(self.pid_file.read_text().strip())
                os.kill(pid, 0)
            except (ValueError, ProcessLookupError):
                pass  # left over from a stack that was killed; take it over
            else:
                raise AlreadyRunning(
                    f"the local stack is already running (pid {pid}); stop it with Ctrl-C "
                    f"in its terminal or `kill {pid}`"
                )
        busy = [f"{n}:{p}" for n, p in vars(self.ports).items() if n != "postgres" and port_open(p)]
        if busy:
            raise AlreadyRunning(
                f"ports already in use by another program: {', '.join(busy)} (another checkout's stack? "
                "start this one beside it with CLINIC_PORT_OFFSET=100, say)"
            )
        self.pid_file.write_text(str(os.getpid()))

    def start_database(self) -> str:
        if self.database_url:
            return self.database_url
        self.postgres = EmbeddedPostgres(self.state / "pgdata", self.ports.postgres)
        self.postgres.start()
        self._ensure_database("clinic")
        return self.postgres.url_for("clinic")

    def _ensure_database(self, name: str) -> None:
        assert self.postgres is not None
        conn = connect_native(self.postgres.url)
        try:
            if not conn.run("SELECT 1 FROM pg_database WHERE datname = :n", n=name):
                conn.run(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_",))}
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "DATABASE_URL": self.database_url or "",
                "WORKERS": str(self.workers),
                "THREADS": str(self.threads),
                "DB_POOL_SIZE": str(self.threads),
                "NOTIFY_URL": f"{self.url('notify')}/tasks/notify",
                # Locally nothing mints OIDC tokens; production verifies them (see Terraform).
                "VERIFY_OIDC": "false",
                # The web app is served by the gateway: emails link to appointments there.
                "PUBLIC_URL": self.url("gateway"),
                # A web client under development, on whatever port its dev server picks.
                "CORS_ALLOWED_ORIGINS": os.environ.get("CORS_ALLOWED_ORIGINS", "*"),
                "PYTHONUNBUFFERED": "1",
                # As Cloud Functions may set it: functions-framework then configures logging
                # again after our import (shared/asgi.py must win that).
                "LOG_EXECUTION_ID": "true",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        self.claim()
        try:
            self.database_url = self.start_database()
            os.environ["DATABASE_URL"] = self.database_url
            self._migrate_and_seed()
            jwks = keys.ensure_keys(self.state)
            for extend in self.extensions:
                extend(self)
            for name in self.functions:
                self.services.append(
                    Service(
                        name,
                        [
                            sys.executable,
                            "-m",
                            "functions_framework",
                            "--target",
                            name,
                            "--source",
                            str(ROOT / "functions" / name / "main.py"),
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(getattr(self.ports, name)),
                        ],
                        getattr(self.ports, name),
                    )
                )
            config = self.state / "gateway.json"
            config.write_text(
                json.dumps(
                    {
                        "jwks_path": str(jwks),
                        "template": {
                            "slots_url": self.url("slots"),
                            "book_url": self.url("book"),
                            "cancel_url": self.url("cancel"),
                            "jwt_issuer": keys.ISSUER,
                            "jwks_uri": jwks.as_uri(),
                            "jwt_audience": keys.AUDIENCE,
                        },
                        "web_dir": str(WEB_DIST),
                        **self.gateway_config,
                    }
                )
            )
            self.services.append(
                Service(
                    "gateway",
                    [
                        sys.executable,
                        "-m",
                        "local.gateway",
                        "--config",
                        str(config),
                        "--port",
                        str(self.ports.gateway),
                    ],
                    self.ports.gateway,
                )
            )
            self.log_dir.mkdir(parents=True, exist_ok=True)
            for service in self.services:
                self.spawn(service)
            self.wait_ready()
            # Where the `clinic` commands of this checkout find this stack (local/running.py).
            running.record(self)
        except BaseException:
            self.stop()
            raise

    def _migrate_and_seed(self) -> None:
        from local.migrate import migrate
        from local.seed import seed
        from shared.settings import get_settings

        get_settings.cache_clear()
        migrate()
        if self.seed:
            seed()

    def spawn(self, service: Service) -> None:
        log = (self.log_dir / f"{service.name}.log").open("ab")
        service.process = subprocess.Popen(
            service.argv,
            cwd=ROOT,
            env={**self.env(), **service.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for service in self.services:
            if service.port is None:
                continue
            while not port_open(service.port):
                assert service.process is not None
                if service.process.poll() is not None:
                    raise RuntimeError(f"{service.name} exited; see {self.log_dir / service.name}.log")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{service.name} did not open port {service.port}")
                time.sleep(0.1)

    def stop_service(self, service: Service) -> None:
        if service.process is not None:
            stop_process(service.process)

    def heal(self) -> Iterator[str]:
        """Starts again whatever of the stack died (a service, the embedded PostgreSQL),
        saying what it does, a line each, as it goes. The supervisor of `make run` runs
        it every second."""
        if self.postgres is not None and self.postgres.postmaster() is None:
            yield f"postgres is gone; see {self.postgres.log_file} - restarting"
            yield self._restart_postgres(time.monotonic())
        for service in self.services:
            if service.process is not None and service.process.poll() is not None:
                yield (
                    f"{service.name} exited ({service.process.returncode}); "
                    f"see {self.log_dir / service.name}.log - restarting"
                )
                self.spawn(service)

    def _restart_postgres(self, started: float, within: float = 60.0) -> str:
        assert self.postgres is not None
        while True:
            try:
                self.postgres.start()
                return f"postgres restarted in {time.monotonic() - started:.1f} s"
            except (RuntimeError, subprocess.CalledProcessError) as error:
                # The killed server's backends hold its shared memory until they notice and exit.
                if time.monotonic() - started > within:
                    return f"postgres did not start again within {within:g} s ({error}); the next check tries again"
                time.sleep(0.5)

    def stop(self) -> None:
        running.forget(self)
        stop_processes([s.process for s in reversed(self.services) if s.process is not None])
        self.services.clear()
        if self.postgres is not None:
            self.postgres.stop()
        if self.pid_file.exists() and self.pid_file.read_text().strip() == str(os.getpid()):
            self.pid_file.unlink()

    def find(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)
