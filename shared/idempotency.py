"""Idempotency-Key, in the HTTP layer: a repeated request gets the first one's answer.

The key is claimed in the request's own unit of work, before the service runs, and
the answer (status and body, as sent) is stored in it too: it commits with the
change or not at all. A concurrent request with the same key waits on the claim
until the first commits (then it replays) or rolls back (then it runs). A refused
request rolls back, so its key is not remembered. Services know nothing of this.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from shared.auth import Caller
from shared.db.sqlfiles import queries
from shared.errors import Unprocessable
from shared.models import Appointment
from shared.retention import IDEMPOTENCY_TTL
from shared.unit_of_work import UnitOfWork
from shared.users import ensure_user

SQL = queries("idempotency")
HEADER = "Idempotency-Key"
Answer = tuple[int, bytes]


def key_from_header(header: str | None) -> str | None:
    """The Idempotency-Key header: printable ASCII, at most 255 characters."""
    if header is None:
        return None
    key = header.strip()
    if not key or len(key) > 255 or not key.isascii() or not key.isprintable():
        raise Unprocessable("Idempotency-Key must be 1-255 printable ASCII characters")
    return key


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What a retry with the same key must repeat: method, path and JSON body (its
    key order and spacing aside)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True)
    except (ValueError, UnicodeDecodeError, RecursionError):
        canonical = body.hex()  # refused by the handler anyway; the claim rolls back
    return hashlib.sha256(f"{method} {path} {canonical}".encode()).hexdigest()


def answer_once(uow: UnitOfWork, caller: Caller, key: str, request: str, answer: Callable[[], Answer]) -> Answer:
    """The stored answer for (caller, key), or `answer()`, stored under the key."""
    ensure_user(uow.tx, caller)  # the key belongs to the caller's users row
    claimed = uow.tx.first(
        SQL.claim_idempotency_key, caller_id=caller.id, key=key, request_hash=request, ttl=IDEMPOTENCY_TTL
    )
    if not claimed:
        return _stored_answer(uow, caller, key, request)
    status, body = answer()
    uow.tx.execute(
        SQL.store_answer, caller_id=caller.id, key=key, status_code=status, response=json.dumps(body.decode())
    )
    return status, body


def _stored_answer(uow: UnitOfWork, caller: Caller, key: str, request: str) -> Answer:
    stored = uow.tx.one(SQL.select_idempotency_key, caller_id=caller.id, key=key)
    response = stored["response"]
    if isinstance(response, str):
        if stored["request_hash"] != request:
            raise Unprocessable("this Idempotency-Key was used for a different request")
        return int(stored["status_code"]), response.encode()
    # Stored by the release before this one (an appointment as a JSON object, under a
    # fingerprint of another form): replayed as it was answered, for the day it lives.
    return int(stored["status_code"]), Appointment.model_validate(response).model_dump_json().encode()
