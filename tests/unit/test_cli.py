"""local/cli.py: which local database a command reaches."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import cli, postgres, stack
from local.stack import Ports


def test_commands_reach_the_stack_of_their_port_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    """`CLINIC_PORT_OFFSET=500 clinic resend-failed ...` must reach the database of the
    stack started with that offset, not the one on the default port."""
    opened: list[int] = []

    class Server:
        def __init__(self, data_dir: Path, port: int) -> None:
            opened.append(port)

        def running(self) -> bool:
            return True

        def start(self) -> None:
            pass

    monkeypatch.setattr(postgres, "EmbeddedPostgres", Server)
    monkeypatch.setattr(stack.Stack, "start_database", lambda self: f"postgresql://postgres@127.0.0.1:{opened[-1]}/x")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("INSTANCE_CONNECTION_NAME", raising=False)
    monkeypatch.setenv("CLINIC_PORT_OFFSET", "500")
    with cli._with_database():
        assert opened == [Ports().postgres + 500]
        assert cli.os.environ["DATABASE_URL"].endswith(f":{Ports().postgres + 500}/x")
