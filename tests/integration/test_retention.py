"""shared/retention.py: idempotency keys live a day, dispatched outbox rows a month."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import pg8000.native
import pytest

from local.postgres import connect_native
from shared import idempotency, retention
from shared.auth import Caller
from shared.errors import Unprocessable
from shared.models import Appointment
from tests.helpers import committed

Conn = pg8000.native.Connection


def caller(sql: Conn) -> Caller:
    who = Caller(uuid.uuid4(), f"{uuid.uuid4().hex}@example.com", "Pat", "patient")
    sql.run("INSERT INTO users (id, email, name, role) VALUES (:i, :e, 'Pat', 'patient')", i=who.id, e=who.email)
    return who


STORED = Appointment(
    id=uuid.uuid4(),
    slot_id=uuid.uuid4(),
    doctor_id=uuid.uuid4(),
    patient_id=uuid.uuid4(),
    start_time=datetime(2027, 1, 4, 9, tzinfo=UTC),
    end_time=datetime(2027, 1, 4, 9, 30, tzinfo=UTC),
    status="BOOKED",
    reason=None,
    created_at=datetime(2027, 1, 1, tzinfo=UTC),
    updated_at=datetime(2027, 1, 1, tzinfo=UTC),
)

STORED_BODY = STORED.model_dump_json().encode()


def key(sql: Conn, who: Caller, name: str, age: str, legacy: bool = False) -> None:
    """A stored answer; `legacy`: as the release before stored it (an appointment as an object)."""
    sql.run(
        "INSERT INTO idempotency_keys (caller_id, key, request_hash, status_code, response, created_at)"
        " VALUES (:c, :k, 'hash', 201, CAST(:response AS jsonb), now() - CAST(:age AS interval))",
        c=who.id,
        k=name,
        response=STORED.model_dump_json() if legacy else json.dumps(STORED.model_dump_json()),
        age=age,
    )


def outbox_row(sql: Conn, name: str, dispatched: str | None, due: str = "40 days") -> None:
    sql.run(
        "INSERT INTO outbox (target, name, payload, dispatched_at, deliver_at)"
        " VALUES ('TASK', :n, '{}', now() - CAST(:age AS interval), now() - CAST(:due AS interval))",
        n=name,
        age=dispatched,
        due=due,
    )


def names(sql: Conn, query: str) -> set[str]:
    return {row[0] for row in sql.run(query)}


def test_prune_deletes_only_what_has_expired(sql: Conn) -> None:
    who = caller(sql)
    key(sql, who, "old", "25 hours")
    key(sql, who, "young", "23 hours")
    outbox_row(sql, "dispatched-long-ago", "31 days")
    outbox_row(sql, "dispatched-lately", "29 days")
    outbox_row(sql, "waiting", None)  # never pruned, however old
    outbox_row(sql, "reminder-due-lately", "40 days", due="1 day")  # sent to Cloud Tasks long before it was due
    sql.run("UPDATE outbox SET created_at = now() - interval '400 days' WHERE name = 'waiting'")

    assert retention.prune() == {"pruned_idempotency_keys": 1, "pruned_outbox": 1}
    assert names(sql, "SELECT key FROM idempotency_keys") == {"young"}
    assert names(sql, "SELECT name FROM outbox") == {"dispatched-lately", "waiting", "reminder-due-lately"}
    assert retention.prune() == {"pruned_idempotency_keys": 0, "pruned_outbox": 0}


def test_prune_goes_a_batch_at_a_time_oldest_first(sql: Conn) -> None:
    who = caller(sql)
    for hours in range(30, 35):
        key(sql, who, f"k{hours}", f"{hours} hours")
    assert retention.prune(limit=2) == {"pruned_idempotency_keys": 2, "pruned_outbox": 0}
    assert names(sql, "SELECT key FROM idempotency_keys") == {"k30", "k31", "k32"}


def test_an_expired_key_is_the_callers_to_use_again(sql: Conn) -> None:
    who = caller(sql)
    key(sql, who, "reused", "25 hours")
    fresh = (201, b'{"fresh": 1}')
    with committed() as uow:  # another request under the old key: a fresh claim, not a 422
        assert idempotency.answer_once(uow, who, "reused", "another-request", lambda: fresh) == fresh
    assert sql.run("SELECT request_hash, response FROM idempotency_keys WHERE key = 'reused'") == [
        ["another-request", '{"fresh": 1}']
    ]
    key(sql, who, "live", "23 hours")
    with pytest.raises(Unprocessable), committed() as uow:  # a live key still refuses another request
        idempotency.answer_once(uow, who, "live", "another-request", never_called)
    with committed() as uow:  # ... and answers its own, as it was first answered
        assert idempotency.answer_once(uow, who, "live", "hash", never_called) == (
            201,
            STORED.model_dump_json().encode(),
        )


def test_a_key_stored_by_the_release_before_is_replayed(sql: Conn) -> None:
    """Answers stored as an appointment object (under a fingerprint of the old form)
    are replayed, byte for byte as the model answers, for the day they live."""
    who = caller(sql)
    key(sql, who, "old", "1 hour", legacy=True)
    with committed() as uow:
        assert idempotency.answer_once(uow, who, "old", "new-form", never_called) == (
            201,
            STORED.model_dump_json().encode(),
        )


def never_called() -> tuple[int, bytes]:
    raise AssertionError("a stored answer is replayed, the request not run again")


def test_prune_spares_a_key_reclaimed_while_it_waited(sql: Conn, database_url: str) -> None:
    """The sweep's delete picks an expired key, then waits for a request that has just
    reclaimed it: once that commits, the key is young again and must stay."""
    who = caller(sql)
    key(sql, who, "reclaimed", "25 hours")
    request = connect_native(database_url)
    try:
        request.run("BEGIN")
        request.run(
            "UPDATE idempotency_keys SET created_at = now(), request_hash = 'new'"
            " WHERE caller_id = :c AND key = 'reclaimed'",
            c=who.id,
        )
        pruned: list[dict[str, int]] = []
        sweep = threading.Thread(target=lambda: pruned.append(retention.prune()))
        sweep.start()
        deadline = time.monotonic() + 10
        while not _waiting_on_a_lock(sql) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _waiting_on_a_lock(sql)
        request.run("COMMIT")
        sweep.join(timeout=10)
    finally:
        request.close()
    assert pruned == [{"pruned_idempotency_keys": 0, "pruned_outbox": 0}]
    assert names(sql, "SELECT request_hash FROM idempotency_keys WHERE key = 'reclaimed'") == {"new"}


def _waiting_on_a_lock(sql: Conn) -> bool:
    rows = sql.run(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return bool(rows[0][0])
