"""The local Cloud Tasks emulator: its own venv, the notify queue created at start.

gcloud-tasks-emulator (PyPI) pins an old protobuf, so it lives in .venv-tasks,
installed on first use from tools/tasks-emulator.lock. local/tasks_emulator_server.py
runs it with the fixes listed there. What the emulator (even so) does not do that
Cloud Tasks does:

- no OIDC token: it sends no Authorization header (notify runs with VERIFY_OIDC=false);
- no rate limits (max_dispatches_per_second); concurrency is the wrapper's
  --max-concurrent-dispatches;
- X-CloudTasks-TaskExecutionCount equals the retry count (Cloud Tasks counts only
  attempts that got a response); no X-CloudTasks-TaskPreviousResponse/RetryReason;
- no 30-day limit on schedule_time (the outbox enforces it anyway);
- names of finished tasks are remembered for a day with a store, until the emulator
  stops without one (Cloud Tasks: ~1 h to 9 days).
What it does honour: its queue across restarts (the stack gives it a file in its state
folder; decision 0012), schedule_time (delivered within ~0.1 s of it), the task's URL,
method, headers and body, X-CloudTasks-TaskRetryCount (0 on the first attempt),
X-CloudTasks-TaskName/QueueName/TaskETA, and max attempts (-r = attempts - 1).
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from local.paths import ROOT

if TYPE_CHECKING:
    from local.stack import Stack

QUEUE = "projects/clinic-local/locations/us-central1/queues/notify"
VENV = ROOT / ".venv-tasks"
LOCK = ROOT / "tools" / "tasks-emulator.lock"
READY = VENV / ".ready"
# The queue's file in a stack's state folder.
STORE = "tasks-queue.jsonl"


def python() -> Path:
    return VENV / "bin" / "python"


def _ready() -> bool:
    return READY.exists() and READY.stat().st_mtime >= LOCK.stat().st_mtime and python().exists()


def ensure_venv() -> Path | None:
    """The emulator's venv, (re)built when the lock file is newer; None if that failed."""
    if _ready():
        return python()
    # Several stacks (tests, benchmarks) may start at once in one checkout: one builds.
    guard_file = ROOT / ".local" / "tasks-emulator-venv.lock"
    guard_file.parent.mkdir(parents=True, exist_ok=True)
    with guard_file.open("a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if _ready():
            return python()
        return _build()


def _build() -> Path | None:
    uv = Path(sys.executable).parent / "uv"
    try:
        if not python().exists():
            subprocess.run(
                [str(uv), "venv", "-q", "--python", sys.executable, str(VENV)], check=True, capture_output=True
            )
        subprocess.run(
            [str(uv), "pip", "sync", "-q", "--python", str(python()), str(LOCK)], check=True, capture_output=True
        )
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", b"") or b""
        print(
            f"the Cloud Tasks emulator could not be installed ({error}; {detail.decode()[-300:]}); "
            "notification tasks wait in the outbox",
            file=sys.stderr,
        )
        return None
    READY.touch()
    return python()


def command(
    port: int,
    queue: str = QUEUE,
    max_attempts: int = 8,
    min_backoff: float = 1.0,
    max_backoff: float = 10.0,
    max_concurrent: int = 8,
    store: Path | None = None,
    target: str | None = None,
) -> list[str] | None:
    """The emulator's command; with `store` its queue is kept in that file across restarts,
    and a task restored from it for this machine is sent to `target` (scheme://host:port)."""
    interpreter = ensure_venv()
    if interpreter is None:
        return None
    kept = ["--store", str(store)] if store else []
    kept += ["--target", target] if target else []
    return [
        str(interpreter),
        "-m",
        "local.tasks_emulator_server",
        "--min-backoff",
        str(min_backoff),
        "--max-backoff",
        str(max_backoff),
        "--max-concurrent-dispatches",
        str(max_concurrent),
        *kept,
        "start",
        "--port",
        str(port),
        "--default-queue",
        queue,
        # The emulator's -r counts retries; Cloud Tasks' max_attempts counts attempts.
        "--max-retries",
        str(max(0, max_attempts - 1)),
    ]


def extend(stack: Stack) -> None:
    from local.stack import Service
    from shared.settings import get_settings

    max_attempts = int(stack.extra_env.get("TASKS_MAX_ATTEMPTS") or get_settings().tasks_max_attempts)
    # Kept in the stack's state folder: a restart (a crash, the next `make run`) loses nothing.
    argv = command(stack.ports.tasks, max_attempts=max_attempts, store=stack.state / STORE, target=stack.url("notify"))
    if argv is None:
        return
    stack.services.append(Service("tasks", argv, stack.ports.tasks))
    stack.extra_env.update(
        {
            "TASKS_EMULATOR_HOST": f"127.0.0.1:{stack.ports.tasks}",
            "TASKS_QUEUE": QUEUE,
        }
    )
