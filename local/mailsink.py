"""The local SMTP sink: every message it receives becomes an .eml file in <state>/mail/.

Run as its own process by the local stack (`python -m local.mailsink --port P --dir D`).
Files are written under a temporary name and renamed, so a reader never sees half
a message; names sort by arrival.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.stack import Stack


class Sink:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        data = content if isinstance(content, bytes) else str(content).encode()
        # The envelope is not part of the message; keep it in front, as Return-Path does.
        header = (
            f"X-Envelope-From: {envelope.mail_from}\r\nX-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        partial = self.folder / f".{name}.part"
        partial.write_bytes(header + data)
        os.replace(partial, self.folder / name)
        return "250 Message accepted for delivery"


def read_all(folder: Path) -> list[EmailMessage]:
    """Every message in the sink folder, oldest first (for tests and tools)."""
    if not folder.exists():
        return []
    messages = []
    for path in sorted(folder.glob("*.eml")):
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
    return messages


def main(argv: list[str] | None = None) -> None:
    from aiosmtpd.controller import Controller

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    controller = Controller(Sink(args.dir), hostname=args.host, port=args.port, data_size_limit=10 * 1024 * 1024)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    controller.start()
    print(f"SMTP sink on {args.host}:{args.port}, writing to {args.dir}", flush=True)
    stop.wait()
    controller.stop()


def extend(stack: Stack) -> None:
    from local.stack import Service

    folder = stack.state / "mail"
    stack.services.append(
        Service(
            "smtp",
            [
                sys.executable,
                "-m",
                "local.mailsink",
                "--port",
                str(stack.ports.smtp),
                "--dir",
                str(folder),
            ],
            stack.ports.smtp,
        )
    )
    stack.extra_env.update({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(stack.ports.smtp)})


if __name__ == "__main__":
    main()
