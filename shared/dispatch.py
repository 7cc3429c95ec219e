"""Sending outbox rows to Cloud Tasks and Pub/Sub after the change committed.

`after_commit` runs in the request that made the change: it reads its rows, sends
them with no database connection held (a request must not pin a pooled connection
while it waits on Google), then marks them. `sweep` (POST /tasks/sweep) sends what
is left: dispatches that failed, rows whose request died before sending (once they
are SETTLE old), and reminders further ahead than Cloud Tasks accepts, once they
come within its horizon. The sweep claims rows with FOR UPDATE SKIP LOCKED, so
concurrent sweeps take disjoint rows. Task names are deterministic: a second dispatch
of a task is refused by Cloud Tasks as ALREADY_EXISTS, which counts as done. Events
are at least once: a request stalled longer than SETTLE may race the sweep.

The Google clients are imported on first use (they cost most of a second, and a
function's cold start must not pay for them) and made once per process.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import logs
from shared.db.sqlfiles import queries
from shared.settings import Settings, get_settings
from shared.unit_of_work import Row, Transaction, UnitOfWork

SQL = queries("outbox")
log = logs.get("clinic.dispatch")

# Cloud Tasks refuses a schedule_time more than 30 days ahead; the margin covers
# clock skew between us and Google.
TASKS_HORIZON = timedelta(days=30) - timedelta(minutes=10)
# Short: a booking waits for these calls before it answers.
CREATE_TASK_TIMEOUT_S = 5.0
PUBLISH_TIMEOUT_S = 5.0
PUBLISH_BATCH_LATENCY_S = 0.001
# One sweep call stops taking new batches after this long (Cloud Scheduler's
# attempt deadline and the function timeout are longer).
SWEEP_BUDGET_S = 20.0
SWEEP_BATCH = 200
# How long the sweep leaves a row that was never tried to the request that wrote it.
SETTLE = timedelta(seconds=10)
# After a call to Cloud Tasks timed out, requests of this process leave their task rows
# to the sweep for this long instead of each waiting CREATE_TASK_TIMEOUT_S for a hung API.
PAUSE_AFTER_TIMEOUT_S = 30.0
_paused_until = 0.0


@dataclass
class Counts:
    tasks: int = 0
    events: int = 0
    failed: int = 0

    def add(self, other: Counts) -> None:
        self.tasks += other.tasks
        self.events += other.events
        self.failed += other.failed


def after_commit(outbox_ids: list[int]) -> None:
    """Dispatches these rows now; whatever fails stays for the sweep. Never raises:
    the change has committed and its request must still succeed."""
    if not outbox_ids:
        return
    try:
        settings = get_settings()
        # While Cloud Tasks is paused its rows are the sweep's; events still go out now.
        tasks_on = _tasks_configured(settings) and time.monotonic() >= _paused_until
        events_on = _events_configured(settings)
        if not (tasks_on or events_on):
            return
        with UnitOfWork() as uow:
            rows = uow.tx.all(
                SQL.select_outbox_ids,
                ids=outbox_ids,
                tasks=tasks_on,
                events=events_on,
                horizon=datetime.now(UTC) + TASKS_HORIZON,
            )
        if not rows:
            return
        started = time.monotonic()
        sent, failed, timed_out = _send(settings, rows)
        sent_ms = round((time.monotonic() - started) * 1000, 1)
        if timed_out:
            _pause_dispatch()
        if failed:
            # Rows skipped after a failure are handed to the sweep at once, like the
            # failed one, instead of waiting out SETTLE.
            first = next(iter(failed.values()))
            for row in rows:
                if row["id"] not in failed and row["id"] not in sent:
                    failed[row["id"]] = f"not tried after: {first}"[:1000]
        with UnitOfWork() as uow:
            _mark(uow.tx, sent, failed)
            uow.commit()
        # The change's line in its trace: which appointment, what went out, how long it took.
        appointments = sorted({str(r["appointment_id"]) for r in rows if r["appointment_id"]})
        log.info(
            "outbox dispatched",
            extra={
                "fields": {
                    "appointment_id": appointments[0] if len(appointments) == 1 else None,
                    "appointment_ids": appointments,
                    "outbox_ids": [r["id"] for r in rows],
                    "sent": len(sent),
                    "failed": len(failed),
                    "dispatch_ms": sent_ms,
                }
            },
        )
    except Exception:
        log.exception(
            "dispatch after commit failed; the sweep will retry", extra={"fields": {"outbox_ids": outbox_ids}}
        )


def sweep(now: datetime | None = None, limit: int = SWEEP_BATCH, settle: timedelta = SETTLE) -> dict[str, int]:
    """Dispatches pending rows in batches until none is left, a batch fails, or the
    time budget is spent. `now` is the clock the 30-day horizon is measured from."""
    clock = now or datetime.now(UTC)
    total = Counts()
    deadline = time.monotonic() + SWEEP_BUDGET_S
    while True:
        counts = _sweep_batch(clock, limit, settle)
        total.add(counts)
        # An event held back behind an older one of its appointment becomes due
        # once that one went out, so a batch that sent anything earns another.
        if counts.failed or counts.tasks + counts.events == 0 or time.monotonic() > deadline:
            break
    at = now or datetime.now(UTC)
    with UnitOfWork() as uow:
        pending = uow.tx.one(SQL.count_pending, now=at, horizon=at + TASKS_HORIZON)
    return report_sweep(total, pending)


def report_sweep(total: Counts, pending: Row) -> dict[str, int]:
    """The sweep's answer, also logged as one structured line: the outbox-age alert and
    dashboard read `oldest_due_age_s` and `due` from it (infra/terraform/modules/monitoring)."""
    result = asdict(total)
    result.update(
        pending_tasks=int(pending["tasks"]),
        pending_events=int(pending["events"]),
        due=int(pending["due"]),
        oldest_due_age_s=int(pending["oldest_due_age_s"]),
    )
    log.info("outbox swept", extra={"fields": result})
    return result


def _sweep_batch(now: datetime, limit: int, settle: timedelta) -> Counts:
    settings = get_settings()
    tasks_on, events_on = _tasks_configured(settings), _events_configured(settings)
    if not (tasks_on or events_on):
        return Counts()
    with UnitOfWork() as uow:
        # The claim's row locks are held while sending: a concurrent sweep skips these.
        rows = uow.tx.all(
            SQL.claim_pending,
            tasks=tasks_on,
            events=events_on,
            horizon=now + TASKS_HORIZON,
            settled=now - settle,
            limit=limit,
        )
        if not rows:
            return Counts()
        sent, failed, _ = _send(settings, rows)
        _mark(uow.tx, sent, failed)
        uow.commit()
    targets = {row["id"]: row["target"] for row in rows}
    return Counts(
        tasks=sum(targets[i] == "TASK" for i in sent),
        events=sum(targets[i] == "EVENT" for i in sent),
        failed=len(failed),
    )


def _send(settings: Settings, rows: list[Row]) -> tuple[list[int], dict[int, str], bool]:
    """Sends the rows, all at once (decision 0014): the events are handed to the
    publisher first (it sends on threads of its own), the tasks are created on a pool,
    then all are waited for, so a request waits about as long as its slowest call, not
    the sum of them. Returns the ids sent, the error of each row that failed, and
    whether a call to Cloud Tasks waited out its whole timeout."""
    events = [r for r in rows if r["target"] == "EVENT"]
    publishing = _start_publish(settings, events) if events else []
    sent, failed, timed_out = _create_tasks(settings, [r for r in rows if r["target"] == "TASK"])
    if publishing:
        published, errors = _finish_publish(settings, publishing)
        sent += published
        failed.update(errors)
    if failed:
        log.warning(
            "outbox dispatch failed; left for the sweep",
            extra={"fields": {"outbox_ids": sorted(failed), "error": next(iter(failed.values()))}},
        )
    return sent, failed, timed_out


# Enough for the tasks of a few concurrent requests; the sweep's batch queues behind them.
TASK_CALLS_AT_ONCE = 16
_pools: dict[int, ThreadPoolExecutor] = {}


def _pool() -> ThreadPoolExecutor:
    # One per process: a forked worker must not inherit its parent's threads.
    with _clients_lock:
        pool = _pools.get(os.getpid())
        if pool is None:
            pool = _pools[os.getpid()] = ThreadPoolExecutor(TASK_CALLS_AT_ONCE, thread_name_prefix="dispatch")
    return pool


def _create_tasks(settings: Settings, rows: list[Row]) -> tuple[list[int], dict[int, str], bool]:
    """Creates the tasks concurrently (the last one on the calling thread). Once one
    finds Cloud Tasks unreachable, those not started yet are not tried: they wait
    untouched for the next sweep, as the rest would fail the same way."""
    unreachable = threading.Event()

    def create(row: Row) -> BaseException | bool | None:
        if unreachable.is_set():
            return None  # not tried
        try:
            _create_task(settings, row)
        except Exception as error:
            if _unreachable(error):
                unreachable.set()
            return error
        return True

    futures = [_pool().submit(create, row) for row in rows[:-1]]
    outcomes = [create(rows[-1])] if rows else []
    outcomes = [future.result() for future in futures] + outcomes
    sent: list[int] = []
    failed: dict[int, str] = {}
    timed_out = False
    for row, outcome in zip(rows, outcomes, strict=True):
        if outcome is True:
            sent.append(row["id"])
        elif isinstance(outcome, BaseException):
            # Refused (it stays, with its error) or unreachable: the sweep tries it again.
            failed[row["id"]] = _summary(outcome)
            timed_out = timed_out or _timed_out(outcome)
    return sent, failed, timed_out


def _mark(tx: Transaction, sent: list[int], failed: dict[int, str]) -> None:
    if sent:
        tx.execute(SQL.mark_dispatched, ids=sent)
    for row_id, error_text in failed.items():
        tx.execute(SQL.mark_failed, id=row_id, error=error_text)


def _pause_dispatch() -> None:
    global _paused_until
    _paused_until = time.monotonic() + PAUSE_AFTER_TIMEOUT_S
    log.warning("Cloud Tasks timed out: for %.0f s requests leave their rows to the sweep", PAUSE_AFTER_TIMEOUT_S)


def _timed_out(error: BaseException) -> bool:
    from google.api_core import exceptions

    return isinstance(error, exceptions.DeadlineExceeded | TimeoutError)


def _unreachable(error: BaseException) -> bool:
    """Cloud Tasks is down or overloaded, as opposed to refusing this one task."""
    from google.api_core import exceptions

    return isinstance(
        error,
        exceptions.ServiceUnavailable
        | exceptions.DeadlineExceeded
        | exceptions.TooManyRequests
        | exceptions.RetryError
        | OSError,
    )


def _summary(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


# -- Cloud Tasks -------------------------------------------------------------------------

_clients: dict[tuple[str, int, str | None], Any] = {}
_clients_lock = threading.Lock()
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def _tasks_configured(settings: Settings) -> bool:
    if settings.tasks_queue and settings.notify_url:
        return True
    _warn_once("tasks", "TASKS_QUEUE or NOTIFY_URL is not set: notification tasks wait in the outbox")
    return False


def _tasks_client(settings: Settings) -> Any:
    key = ("tasks", os.getpid(), settings.tasks_emulator_host)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            from google.cloud import tasks_v2

            if settings.tasks_emulator_host:
                import grpc
                from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

                # The emulator speaks plain gRPC without credentials. A short reconnect
                # backoff lets a restarted emulator be used again within seconds.
                channel = grpc.insecure_channel(
                    settings.tasks_emulator_host,
                    options=[("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 2000)],
                )
                client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
            else:
                client = tasks_v2.CloudTasksClient()
            _clients[key] = client
    return client


def task_request(settings: Settings, row: Row) -> dict[str, Any]:
    """The CreateTask body of an outbox TASK row."""
    assert settings.tasks_queue and settings.notify_url
    http_request: dict[str, Any] = {
        "http_method": "POST",
        "url": settings.notify_url,
        # The trace of the change that wrote the row: notify's log lines and the email join it.
        "headers": {
            "Content-Type": "application/json",
            **(logs.trace_headers(row["trace"]) if row.get("trace") else {}),
        },
        "body": json.dumps(row["payload"], sort_keys=True).encode(),
    }
    if settings.tasks_service_account:
        http_request["oidc_token"] = {
            "service_account_email": settings.tasks_service_account,
            "audience": settings.oidc_audience or settings.notify_url,
        }
    return {
        "name": f"{settings.tasks_queue}/tasks/{row['name']}",
        "schedule_time": row["deliver_at"],
        "dispatch_deadline": timedelta(seconds=settings.tasks_dispatch_deadline_s),
        "http_request": http_request,
    }


def _create_task(settings: Settings, row: Row) -> None:
    from google.api_core import exceptions
    from google.cloud import tasks_v2

    client = _tasks_client(settings)
    task = tasks_v2.Task(**task_request(settings, row))
    # ALREADY_EXISTS: dispatched before (the mark was lost, or a sweep raced us): done.
    with contextlib.suppress(exceptions.AlreadyExists):
        # No client-side retry: a failure is recorded and the sweep is the retry.
        client.create_task(parent=settings.tasks_queue, task=task, timeout=CREATE_TASK_TIMEOUT_S, retry=None)


# -- Pub/Sub -----------------------------------------------------------------------------


def _events_configured(settings: Settings) -> bool:
    if settings.pubsub_topic:
        return True
    _warn_once("events", "PUBSUB_TOPIC is not set: domain events wait in the outbox")
    return False


def _publisher() -> Any:
    # PUBSUB_EMULATOR_HOST, when set, is honoured by the client itself.
    key = ("pubsub", os.getpid(), os.environ.get("PUBSUB_EMULATOR_HOST"))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            from google.cloud import pubsub_v1  # type: ignore[attr-defined, unused-ignore]

            client = pubsub_v1.PublisherClient(
                # Each appointment is its own ordering key, so a request's event is a batch
                # of its own: waiting the default 10 ms for more only delays the booking.
                batch_settings=pubsub_v1.types.BatchSettings(max_latency=PUBLISH_BATCH_LATENCY_S),
                publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
            )
            _clients[key] = client
    return client


Publishing = list[tuple[Row, "Future[str]"]]


def _start_publish(settings: Settings, rows: list[Row]) -> Publishing:
    """Hands every event to the publisher (which batches what is published together)
    and returns at once; _finish_publish waits for them."""
    publisher = _publisher()
    futures: Publishing = []
    for row in rows:
        payload = row["payload"]
        attributes = {"type": str(payload.get("type", "")), "event_id": row["name"]}
        if row.get("trace"):
            # The change's trace, for a subscriber to join (issue 17).
            attributes["traceparent"] = logs.trace_headers(row["trace"])["traceparent"]
        # retry=None: with ordering keys the client would otherwise retry forever in
        # the background, and the sweep would publish the same event a second time.
        future = publisher.publish(
            settings.pubsub_topic,
            json.dumps(payload, sort_keys=True).encode(),
            ordering_key=str(row["ordering_key"]),
            retry=None,
            timeout=PUBLISH_TIMEOUT_S,
            **attributes,
        )
        futures.append((row, future))
    return futures


def _finish_publish(settings: Settings, futures: Publishing) -> tuple[list[int], dict[int, str]]:
    publisher = _publisher()
    published: list[int] = []
    failed: dict[int, str] = {}
    for row, future in futures:
        try:
            future.result(timeout=PUBLISH_TIMEOUT_S + 1)
            published.append(row["id"])
        except Exception as error:
            failed[row["id"]] = _summary(error)
            # A failed publish pauses its ordering key until resumed; the sweep
            # publishes the event again, in order.
            publisher.resume_publish(settings.pubsub_topic, str(row["ordering_key"]))
    return published, failed
