"""Which stack is this checkout's: the state file a running stack writes into its state
folder (.local/stack.json), and the checks the `clinic` commands make with it.

Two checkouts on one machine each have a stack, the second moved by CLINIC_PORT_OFFSET.
A command run in a checkout reaches that checkout's stack (its ports and database from
the file), never whatever answers on the default ports, and refuses, saying so, where the
stack it would reach is another checkout's.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from local.paths import ROOT, STATE

if TYPE_CHECKING:
    from local.stack import Stack

FILE = "stack.json"


class Refused(RuntimeError):
    """The command would reach a stack (or a server) that is not this checkout's."""


@dataclass(frozen=True)
class Running:
    root: str  # the checkout that started it
    state: str
    pid: int  # the process that runs it (`clinic run`, or a test)
    ports: dict[str, int]
    database_url: str
    embedded_postgres: bool  # its own server, in <state>/pgdata (else DATABASE_URL's)
    services: list[str]
    started_at: str


def record(stack: Stack) -> None:
    """Written once the stack serves; replaced whole, so a reader never sees half of it."""
    running = Running(
        root=str(ROOT),
        state=str(stack.state.resolve()),
        pid=os.getpid(),
        ports=dict(vars(stack.ports)),
        database_url=stack.database_url or "",
        embedded_postgres=stack.postgres is not None,
        services=[service.name for service in stack.services],
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    path = stack.state / FILE
    temporary = path.with_suffix(".tmp")
    temporary.touch(mode=0o600)  # a DATABASE_URL may hold a password
    temporary.write_text(json.dumps(asdict(running), indent=2) + "\n")
    temporary.replace(path)


def forget(stack: Stack) -> None:
    path = stack.state / FILE
    found = read(stack.state, alive_only=False)
    if found is not None and found.pid == os.getpid():
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    return True


def read(state: Path | None = None, alive_only: bool = True) -> Running | None:
    """The stack recorded in this state folder (this checkout's: .local/); None if there is
    none, or its process is gone (killed: the file outlived it)."""
    state = state or STATE
    try:
        running = Running(**json.loads((state / FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if alive_only and not _alive(running.pid):
        return None
    return running


def this_checkouts(state: Path | None = None) -> Running | None:
    """This checkout's running stack, or None if it has none running.

    Refused: the state folder records another checkout's stack (a copied or shared
    folder), or CLINIC_PORT_OFFSET asks for other ports than the running stack's.
    """
    state = state or STATE
    running = read(state)
    if running is None:
        return None
    if Path(running.root).resolve() != ROOT.resolve():
        raise Refused(
            f"{state / FILE} describes the stack of another checkout ({running.root}, pid {running.pid}), "
            f"not of this one ({ROOT}); give this checkout its own state folder"
        )
    offset = os.environ.get("CLINIC_PORT_OFFSET")
    if offset:
        from local.stack import Ports

        asked = vars(Ports.offset(int(offset)))
        if asked != running.ports:
            raise Refused(
                f"CLINIC_PORT_OFFSET={offset} points at the gateway on port {asked['gateway']}, but this "
                f"checkout's stack (pid {running.pid}) runs with its gateway on port {running.ports['gateway']}: "
                "unset CLINIC_PORT_OFFSET (the commands find this checkout's stack) or set it as `make run` had it"
            )
    return running


def check_database_is_ours(url: str, pgdata: Path) -> None:
    """Refused unless the server at `url` keeps its data in this checkout's `pgdata`."""
    import pg8000

    from local.postgres import connect_native
    from shared.errors import DatabaseUnavailable

    try:
        conn = connect_native(url, timeout=5)
    except (OSError, pg8000.InterfaceError) as error:
        raise DatabaseUnavailable(f"{url} does not answer ({error})") from None
    try:
        [[data_directory]] = conn.run("SELECT current_setting('data_directory')")
    finally:
        conn.close()
    if Path(data_directory).resolve() != pgdata.resolve():
        raise Refused(
            f"the PostgreSQL at {url} keeps its data in {data_directory}: another checkout's stack, not this one's "
            f"({pgdata}). Start this checkout's with `make run` (give it CLINIC_PORT_OFFSET beside another), "
            "and the commands find it"
        )
