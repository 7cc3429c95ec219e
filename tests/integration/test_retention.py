"""shared/retention.py: idempotency keys live a day, dispatched outbox rows a month."""

from __future__ import annotations

import uuid

import pg8000.native
import pytest

from shared import appointments, retention
from shared.auth import Caller
from shared.db import transaction
from shared.errors import Unprocessable

Conn = pg8000.native.Connection


def caller(sql: Conn) -> Caller:
    who = Caller(uuid.uuid4(), f"{uuid.uuid4().hex}@example.com", "Pat", "patient")
    sql.run("INSERT INTO users (id, email, name, role) VALUES (:i, :e, 'Pat', 'patient')", i=who.id, e=who.email)
    return who


def key(sql: Conn, who: Caller, name: str, age: str) -> None:
    sql.run(
        "INSERT INTO idempotency_keys (caller_id, key, request_hash, status_code, response, created_at)"
        " VALUES (:c, :k, 'hash', 201, '{}', now() - CAST(:age AS interval))",
        c=who.id,
        k=name,
        age=age,
    )


def outbox_row(sql: Conn, name: str, dispatched: str | None) -> None:
    sql.run(
        "INSERT INTO outbox (target, name, payload, dispatched_at)"
        " VALUES ('EVENT', :n, '{}', now() - CAST(:age AS interval))",
        n=name,
        age=dispatched,
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
    sql.run("UPDATE outbox SET created_at = now() - interval '400 days' WHERE name = 'waiting'")

    assert retention.prune() == {"pruned_idempotency_keys": 1, "pruned_outbox": 1}
    assert names(sql, "SELECT key FROM idempotency_keys") == {"young"}
    assert names(sql, "SELECT name FROM outbox") == {"dispatched-lately", "waiting"}
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
    with transaction() as tx:  # another request under the old key: a fresh claim, not a 422
        assert appointments.replay(tx, who, "reused", "another-request") is None
    assert sql.run("SELECT request_hash, response FROM idempotency_keys WHERE key = 'reused'") == [
        ["another-request", None]
    ]
    key(sql, who, "live", "23 hours")
    with pytest.raises(Unprocessable), transaction() as tx:  # a live key still refuses another request
        appointments.replay(tx, who, "live", "another-request")
    with transaction() as tx:  # ... and answers its own
        assert appointments.replay(tx, who, "live", "hash") == (201, {})
