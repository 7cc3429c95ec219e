"""Google's Pub/Sub emulator for the local stack, with the topic and a subscription.

`python -m local.pubsub_emulator --port P --data-dir D` starts
`gcloud beta emulators pubsub start` (a Java process) in this process group, waits
for it, creates the `appointment-events` topic and the developer's subscription
(what `clinic events` tails), then stays until it is stopped. Where gcloud is not
installed the stack runs without it and domain events wait in the outbox.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.stack import Stack

PROJECT = "clinic-local"
TOPIC = f"projects/{PROJECT}/topics/appointment-events"
SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/appointment-events-dev"


def gcloud() -> str | None:
    return shutil.which("gcloud")


def ensure_topic(
    host: str, topic: str = TOPIC, subscriptions: tuple[str, ...] = (SUBSCRIPTION,), timeout: float = 30.0
) -> None:
    """Creates the topic and subscriptions (ordered delivery) if they do not exist."""
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    from google.api_core import exceptions
    from google.cloud import pubsub_v1  # type: ignore[attr-defined, unused-ignore]

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    deadline = time.monotonic() + timeout
    while True:
        try:
            publisher.create_topic(name=topic, timeout=5)
            break
        except exceptions.AlreadyExists:
            break
        except exceptions.GoogleAPICallError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    for name in subscriptions:
        with contextlib.suppress(exceptions.AlreadyExists):
            subscriber.create_subscription(
                request={"name": name, "topic": topic, "enable_message_ordering": True}, timeout=5
            )


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.3)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def end_group(child: subprocess.Popen[bytes]) -> None:
    """Stops an emulator's process group (gcloud and Java; firebase and Node): TERM, then KILL after 5 s."""
    try:
        os.killpg(child.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        child.poll()
        try:
            os.killpg(child.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    binary = gcloud()
    if binary is None:
        raise SystemExit("gcloud is not installed")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1", "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1"}
    started: list[subprocess.Popen[bytes]] = []

    def _stop(*_: Any) -> None:
        for child in started:
            end_group(child)
        sys.exit(0)

    # Installed before gcloud starts, so no stop signal can leave it behind.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # gcloud moves itself into a process group of its own unless it leads its session,
    # so it gets a session, and this wrapper stops that whole group (gcloud and Java)
    # when the stack stops the wrapper's group.
    child = subprocess.Popen(
        [
            binary,
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port=127.0.0.1:{args.port}",
            f"--project={PROJECT}",
            f"--data-dir={args.data_dir}",
            "--verbosity=warning",
        ],
        env=env,
        start_new_session=True,
    )
    started.append(child)
    code = 1
    try:
        # Imported while Java starts: the topic then exists a moment after the port opens.
        import google.cloud.pubsub_v1  # noqa: F401

        deadline = time.monotonic() + 60
        while not port_open(args.port):
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the Pub/Sub emulator did not start")
            time.sleep(0.2)
        ensure_topic(f"127.0.0.1:{args.port}")
        print(f"Pub/Sub emulator on 127.0.0.1:{args.port}: {TOPIC}, {SUBSCRIPTION}", flush=True)
        code = child.wait()
    finally:
        end_group(child)
    sys.exit(code)


def extend(stack: Stack) -> None:
    from local.stack import Service

    if gcloud() is None:
        print("gcloud is not installed: no Pub/Sub emulator; domain events wait in the outbox", flush=True)
        return
    stack.services.append(
        Service(
            "pubsub",
            [
                sys.executable,
                "-m",
                "local.pubsub_emulator",
                "--port",
                str(stack.ports.pubsub),
                "--data-dir",
                str(stack.state / "pubsub"),
            ],
            stack.ports.pubsub,
        )
    )
    stack.extra_env.update(
        {
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{stack.ports.pubsub}",
            "PUBSUB_TOPIC": TOPIC,
            "PUBSUB_SUBSCRIPTION": SUBSCRIPTION,
        }
    )


if __name__ == "__main__":
    main()
