"""Services the local stack adds beside the database and the functions.

Each extension is called with the stack before the functions start; it may add
Service entries and environment variables (emulators, the mail sink, timers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from local.stack import Stack


def default() -> list[Callable[[Stack], None]]:
    from local import auth_emulator, mailsink, pubsub_emulator, sweeper, tasks_emulator

    return [auth_emulator.extend, tasks_emulator.extend, pubsub_emulator.extend, mailsink.extend, sweeper.extend]
