"""The local outbox sweep timer: POSTs to notify's /tasks/sweep every SWEEP_INTERVAL seconds.

Production's Cloud Scheduler does the same every minute. The local stack runs it
as its own process; a failed call is logged and the next one is the retry.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.stack import Stack

DEFAULT_INTERVAL = 5.0


def sweep_once(url: str, timeout: float = 60.0) -> dict[str, Any]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=b"{}", method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - checked above
        result: dict[str, Any] = json.loads(response.read() or b"{}")
        return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--interval", type=float, default=float(os.environ.get("SWEEP_INTERVAL") or DEFAULT_INTERVAL))
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"sweeping {args.url} every {args.interval:g}s", flush=True)
    while not stop.wait(args.interval):
        started = time.monotonic()
        try:
            counts = sweep_once(args.url)
        except (OSError, urllib.error.URLError, ValueError) as error:
            print(json.dumps({"severity": "WARNING", "message": f"sweep failed: {error}"}), flush=True)
            continue
        if counts.get("tasks") or counts.get("events") or counts.get("failed"):
            print(
                json.dumps(
                    {"severity": "INFO", "message": "swept", **counts, "seconds": round(time.monotonic() - started, 3)}
                ),
                flush=True,
            )
    sys.exit(0)


def extend(stack: Stack) -> None:
    from local.stack import Service

    stack.services.append(
        Service(
            "sweeper",
            [
                sys.executable,
                "-m",
                "local.sweeper",
                "--url",
                f"{stack.url('notify')}/tasks/sweep",
            ],
            None,
        )
    )


if __name__ == "__main__":
    main()
