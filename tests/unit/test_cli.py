"""local/cli.py and local/running.py: which local database and stack a command reaches."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from local import cli, postgres, running, stack
from local.paths import ROOT
from local.stack import Ports


@pytest.fixture
def no_database_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("INSTANCE_CONNECTION_NAME", raising=False)
    monkeypatch.delenv("CLINIC_PORT_OFFSET", raising=False)
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setattr("local.paths.STATE", tmp_path)
    monkeypatch.setattr(running, "STATE", tmp_path)
    return tmp_path


def test_without_a_running_stack_commands_reach_the_server_of_their_port_offset(
    monkeypatch: pytest.MonkeyPatch, no_database_env: Path
) -> None:
    """`CLINIC_PORT_OFFSET=500 clinic resend-failed ...` with no stack of this checkout
    running: this checkout's embedded server on the offset's port, not the default one."""
    opened: list[int] = []

    class Server:
        def __init__(self, data_dir: Path, port: int) -> None:
            self.port = port
            opened.append(port)

        def postmaster(self) -> None:
            return None

        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

        def url_for(self, database: str) -> str:
            return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    checked: list[tuple[str, Path]] = []
    monkeypatch.setattr(postgres, "EmbeddedPostgres", Server)
    monkeypatch.setattr(stack.Stack, "_ensure_database", lambda self, name: None)
    monkeypatch.setattr(running, "check_database_is_ours", lambda url, pgdata: checked.append((url, pgdata)))
    monkeypatch.setenv("CLINIC_PORT_OFFSET", "500")
    with cli._with_database():
        assert opened == [Ports().postgres + 500]
        assert cli.os.environ["DATABASE_URL"].endswith(f":{Ports().postgres + 500}/clinic")
    assert checked == [(cli.os.environ["DATABASE_URL"], no_database_env / "pgdata")]
    monkeypatch.delenv("DATABASE_URL")


def write_state(state: Path, **overrides: object) -> None:
    recorded = {
        "root": str(ROOT),
        "state": str(state),
        "pid": os.getpid(),
        "ports": vars(Ports.offset(300)),
        "database_url": "postgresql://postgres@127.0.0.1:54629/clinic",
        "embedded_postgres": True,
        "services": ["tasks", "pubsub", "gateway"],
        "started_at": "2026-12-06T00:00:00+00:00",
    }
    (state / running.FILE).write_text(json.dumps(recorded | overrides))


def test_a_running_stack_is_found_from_its_state_file(no_database_env: Path) -> None:
    write_state(no_database_env)
    found = running.this_checkouts(no_database_env)
    assert found is not None and found.ports == vars(Ports.offset(300))


def test_a_stack_whose_process_is_gone_is_not_running(no_database_env: Path) -> None:
    write_state(no_database_env, pid=2**22 + 12345)  # above Linux's pid_max default
    assert running.this_checkouts(no_database_env) is None


def test_another_checkouts_state_file_is_refused(no_database_env: Path) -> None:
    write_state(no_database_env, root="/elsewhere/clinic")
    with pytest.raises(running.Refused, match="another checkout"):
        running.this_checkouts(no_database_env)


def test_an_offset_that_is_not_the_running_stacks_is_refused(
    monkeypatch: pytest.MonkeyPatch, no_database_env: Path
) -> None:
    write_state(no_database_env)
    monkeypatch.setenv("CLINIC_PORT_OFFSET", "300")
    assert running.this_checkouts(no_database_env) is not None
    monkeypatch.setenv("CLINIC_PORT_OFFSET", "0")
    with pytest.raises(running.Refused, match="CLINIC_PORT_OFFSET=0"):
        running.this_checkouts(no_database_env)


def test_events_without_a_running_stack_is_refused(no_database_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["events", "--wait", "0"])
    assert exited.value.code == 1
    assert "not running" in capsys.readouterr().err
