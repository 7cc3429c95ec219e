"""`clinic events`: tails the local Pub/Sub subscription and prints each domain event."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

from local.pubsub_emulator import SUBSCRIPTION


def pull(host: str, subscription: str, wait: float = 10.0) -> Iterator[dict[str, Any]]:
    """Yields events as they arrive (acknowledged once yielded) until `wait` passes without one."""
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    from google.api_core import exceptions
    from google.cloud import pubsub_v1  # type: ignore[attr-defined, unused-ignore]

    subscriber = pubsub_v1.SubscriberClient()
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < wait:
        try:
            response = subscriber.pull(
                request={"subscription": subscription, "max_messages": 100}, timeout=min(wait, 5.0)
            )
        except exceptions.DeadlineExceeded:
            continue
        if not response.received_messages:
            time.sleep(0.2)
            continue
        idle_since = time.monotonic()
        for received in response.received_messages:
            message = received.message
            try:
                body = json.loads(message.data)
            except ValueError:
                body = {"type": "(not JSON)"}
            yield {
                "type": body.get("type") or message.attributes.get("type"),
                "appointment_id": (body.get("appointment") or {}).get("id"),
                "ordering_key": message.ordering_key,
                "audit_id": body.get("audit_id"),
                "occurred_at": body.get("occurred_at"),
                "message_id": message.message_id,
                "attributes": dict(message.attributes),
                "event": body,
            }
        subscriber.acknowledge(
            request={"subscription": subscription, "ack_ids": [r.ack_id for r in response.received_messages]}
        )


def main(host: str, subscription: str | None, wait: float | None) -> None:
    subscription = subscription or os.environ.get("PUBSUB_SUBSCRIPTION") or SUBSCRIPTION
    print(f"tailing {subscription} on {host} (Ctrl-C stops)", flush=True)
    try:
        for event in pull(host, subscription, wait=wait if wait is not None else float("inf")):
            print(
                f"{event['type']:<26} appointment={event['appointment_id']} "
                f"ordering_key={event['ordering_key']} audit_id={event['audit_id']} "
                f"at={event['occurred_at']}",
                flush=True,
            )
    except KeyboardInterrupt:
        pass
