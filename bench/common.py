"""What the benchmarks share: a PostgreSQL of their own, databases on it, percentiles.

The benchmarks run their own embedded PostgreSQL (data kept under .local/) unless
DATABASE_URL points at a server; either way they work in databases of their own,
so they never touch the developer's `clinic` database or the tests' databases.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pg8000.native

from local.paths import ROOT
from local.postgres import EmbeddedPostgres, connect_native, url_with_database
from local.stack import Ports

# Far from `make run` (offset 0), the e2e tests (offset 1000 + 100 per slot) and
# other engineers' stacks; the two embedded servers sit beside the stack's ports.
PORTS = Ports.offset(4000)
BOOKING_PG_PORT = PORTS.postgres  # 58329
SLOTS_PG_PORT = PORTS.postgres + 10  # 58339
STATE = ROOT / ".local"


def connect(url: str) -> pg8000.native.Connection:
    # Building the 5-million-slot data set runs statements for minutes.
    return connect_native(url, timeout=3600)


@dataclass
class Server:
    """The server the benchmark uses; `admin_url` points at its maintenance database."""

    admin_url: str
    embedded: EmbeddedPostgres | None

    def url(self, database: str) -> str:
        return url_with_database(self.admin_url, database)

    @property
    def postmaster(self) -> int | None:
        """The server's main pid when it runs here (to count its CPU), else None."""
        from bench.cpu import postmaster_pid

        return postmaster_pid(str(self.embedded.data_dir)) if self.embedded else None

    def exists(self, database: str) -> bool:
        conn = connect(self.admin_url)
        try:
            return bool(conn.run("SELECT 1 FROM pg_database WHERE datname = :n", n=database))
        finally:
            conn.close()

    def recreate(self, database: str) -> str:
        conn = connect(self.admin_url)
        try:
            conn.run(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.run(f'CREATE DATABASE "{database}"')
        finally:
            conn.close()
        return self.url(database)


@contextmanager
def server(folder: str, port: int) -> Iterator[Server]:
    """DATABASE_URL's server when set, else an embedded one in .local/<folder>/ (stopped after)."""
    external = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if external:
        yield Server(url_with_database(external, "postgres"), None)
        return
    embedded = EmbeddedPostgres(STATE / folder / "pgdata", port)
    was_running = embedded.running() if (embedded.data_dir / "PG_VERSION").exists() else False
    embedded.start()
    try:
        yield Server(embedded.url, embedded)
    finally:
        if not was_running:
            embedded.stop()


def migrate(url: str) -> None:
    from local.migrate import migrate as run_migrations
    from shared.settings import Settings

    run_migrations(Settings(database_url=url))


# -- figures -------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


@dataclass
class Figures:
    """One measured phase: completed operations over the measured window, latencies in ms."""

    name: str
    count: int
    seconds: float
    latencies_ms: list[float]
    errors: int = 0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def p(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)

    def line(self) -> str:
        return (
            f"{self.name:<34} {self.rate:9.0f} /s   p50 {self.p(0.50):7.2f} ms   "
            f"p99 {self.p(0.99):7.2f} ms   n={self.count}"
            + (f"   errors={self.errors}" if self.errors else "")
            + (f"\n{'':<36}{self.note}" if self.note else "")
        )


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


class Timer:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __str__(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s"


def bench_dir(name: str) -> Path:
    path = STATE / name
    path.mkdir(parents=True, exist_ok=True)
    return path
