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
from typing import Protocol

from shared.auth import Caller
from shared.errors import Unprocessable
from shared.repositories import Accounts, IdempotencyKeys
from shared.retention import IDEMPOTENCY_TTL

HEADER = "Idempotency-Key"
Answer = tuple[int, bytes]


class Work(Protocol):
    accounts: Accounts
    idempotency_keys: IdempotencyKeys


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


def answer_once(uow: Work, caller: Caller, key: str, request: str, answer: Callable[[], Answer]) -> Answer:
    """The answer stored under (caller, key), or `answer()`, stored there."""
    uow.accounts.ensure(caller)  # the key belongs to the caller's users row
    if not uow.idempotency_keys.claim(caller.id, key, request, IDEMPOTENCY_TTL):
        return _stored_answer(uow, caller, key, request)
    status, body = answer()
    uow.idempotency_keys.store(caller.id, key, status, body.decode())
    return status, body


def _stored_answer(uow: Work, caller: Caller, key: str, request: str) -> Answer:
    stored = uow.idempotency_keys.stored(caller.id, key)
    response = stored["response"]
    if isinstance(response, str):
        if stored["request_hash"] != request:
            raise Unprocessable("this Idempotency-Key was used for a different request")
        return int(stored["status_code"]), response.encode()
    # Stored by the release before this one (an appointment as a JSON object, under a
    # fingerprint of another form): replayed as it was answered, for the day it lives.
    # Imported here, for these rows only: notify has no use for the API's models.
    from shared.models import Appointment

    return int(stored["status_code"]), Appointment.model_validate(response).model_dump_json().encode()
