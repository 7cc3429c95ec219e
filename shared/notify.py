"""The notify function's rules: who may call it, and whether a message is still true.

Cloud Tasks delivers at least once and in no particular order, so a task is only a
hint: the appointment is re-read (and share-locked, so a cancel or move waits) and
nothing is sent unless the message still describes it. At most one SENT row exists
per message_key (a partial unique index): the row is inserted first, the message sent
over the task's channel (shared.channels; email is shared.mail), then both commit
together, so a duplicate delivery, even a concurrent one, sends nothing. A temporary
failure answers 503 so that Cloud Tasks retries with backoff; on the queue's last
attempt the message is recorded as FAILED and answered 200.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared import channels, logs, mail
from shared.db.errors import IntegrityViolation
from shared.db.sqlfiles import queries
from shared.enums import ChannelName, NoticeKind
from shared.errors import Busy, DatabaseUnavailable, DomainError, Forbidden, Unauthenticated
from shared.settings import Settings, get_settings
from shared.unit_of_work import Row, Transaction, UnitOfWork

SQL = queries("notify")
log = logs.get("clinic.notify")

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
# The notices that tell the patient what changed from what they last heard.
TELLS_A_CHANGE = ("RESCHEDULED", "CANCELLATION")
# Every channel a task may name (enums.ChannelName); NOTIFY_CHANNELS picks those used.
CHANNELS: dict[ChannelName, channels.Channel] = {"email": mail.Email()}


class Unavailable(DomainError):
    """Answered 503: Cloud Tasks (or Cloud Scheduler) tries again later."""

    status, title, type_ = 503, "Service unavailable", "/problems/unavailable"


class TaskMessage(BaseModel):
    """The body of a notify task, as shared.outbox writes it."""

    model_config = ConfigDict(extra="forbid")

    # The deterministic task name: appointment, kind, slot start, audit id or offset.
    message_key: str = Field(min_length=1, max_length=500, pattern=r"^[A-Za-z0-9_-]+$")
    appointment_id: UUID
    kind: NoticeKind
    slot_id: UUID
    start_time: AwareDatetime
    # The change a notice is about; None for a reminder.
    audit_id: int | None = Field(default=None, ge=1)
    # Tasks queued before there were channels carry none: they were email.
    channel: ChannelName = "email"

    @model_validator(mode="after")
    def _audit_id_of_an_older_payload(self) -> TaskMessage:
        # Tasks queued before payloads carried it have it only as their name's last part.
        if self.audit_id is None and "audit_id" not in self.model_fields_set:
            self.audit_id = audit_id_of(self.kind, self.message_key)
        return self


def audit_id_of(kind: str, message_key: str) -> int | None:
    """The change a notice is about (its key's last part: shared.outbox.task_name);
    reminders have none."""
    if kind == "REMINDER":
        return None
    suffix = message_key.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() and len(suffix) <= 18 else None


@dataclass(frozen=True)
class Outcome:
    result: Literal["sent", "skipped", "duplicate", "failed"]
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"result": self.result, "detail": self.detail}


# -- the caller --------------------------------------------------------------------------

_verification_off_logged = False
SERVERLESS_AUTHORIZATION = "X-Serverless-Authorization"
# What Cloud Run puts in place of the signature of a token it verified.
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
CLOCK_SKEW_S = 30


def verify_caller(headers: Mapping[str, str], settings: Settings | None = None) -> None:
    """Accepts only a Google OIDC token for our audience from a listed account.

    Behind Cloud Run IAM the token arrives with its signature removed (Cloud Run checked
    it): its claims are checked here. Otherwise the signature is verified too.
    """
    global _verification_off_logged
    settings = settings or get_settings()
    if not settings.verify_oidc:
        if not _verification_off_logged:
            _verification_off_logged = True
            log.warning(
                "OIDC verification is OFF (VERIFY_OIDC=false): any caller can reach notify; local development only"
            )
        return
    if not settings.oidc_audience or not settings.notify_invokers:
        log.error("VERIFY_OIDC is on but OIDC_AUDIENCE or NOTIFY_INVOKERS is not set: refusing every call")
        raise Unavailable("the notify function is not configured to verify its callers")
    # With both headers present, Cloud Run authenticates X-Serverless-Authorization and
    # passes Authorization through untouched: the one it checked is the one to read.
    authorization = headers.get(SERVERLESS_AUTHORIZATION) or headers.get("Authorization")
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("this endpoint needs a Google-signed OIDC token (Authorization: Bearer)")
    if token.endswith("." + SIGNATURE_REMOVED):
        if not settings.oidc_checked_by_cloud_run:
            raise Unauthenticated("a token without its signature is accepted only behind Cloud Run IAM")
        claims = _claims_checked_by_cloud_run(token, settings)
    else:
        claims = _verified_claims(token, settings)
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise Unauthenticated("the OIDC token was not issued by Google")
    if claims.get("email") not in settings.notify_invokers or claims.get("email_verified") is not True:
        raise Forbidden("this identity may not call the notify function")


def _claims_checked_by_cloud_run(token: str, settings: Settings) -> dict[str, Any]:
    """The claims of a token Cloud Run verified and forwarded without its signature.

    Cloud Run accepts any audience the service answers to, so ours is checked here, and
    the expiry again (a request can wait in Cloud Run's queue)."""
    parts = token.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not a JWT")
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise Unauthenticated("the OIDC token is not valid") from error
    if not isinstance(claims, dict):
        raise Unauthenticated("the OIDC token is not valid")
    audiences = claims.get("aud")
    audiences = audiences if isinstance(audiences, list) else [audiences]
    if settings.oidc_audience not in audiences:
        raise Unauthenticated("the OIDC token is not valid")
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or expires + CLOCK_SKEW_S < time.time():
        raise Unauthenticated("the OIDC token is not valid")
    return claims


def _verified_claims(token: str, settings: Settings) -> dict[str, Any]:
    from google.auth import exceptions as auth_exceptions
    from google.oauth2 import id_token

    try:
        claims = id_token.verify_token(
            token,
            cast(Any, _CERTS),
            audience=settings.oidc_audience,
            certs_url=settings.oidc_certs_url,
            clock_skew_in_seconds=CLOCK_SKEW_S,
        )
    except auth_exceptions.TransportError as error:
        raise Unavailable("Google's signing certificates could not be fetched") from error
    except (ValueError, auth_exceptions.GoogleAuthError) as error:
        # Bad signature, expired, wrong audience, malformed: all the same to the caller.
        raise Unauthenticated("the OIDC token is not valid") from error
    return dict(claims)


class _CachedCertsRequest:
    """google-auth fetches the signing certificates on every verification; they change
    about daily, so each instance keeps them for a few minutes."""

    TTL_S = 300.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}
        self._inner: Any = None

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(url) if method == "GET" else None
            if cached and now - cached[0] < self.TTL_S:
                return cached[1]
            if self._inner is None:
                from google.auth.transport import requests as transport

                self._inner = transport.Request()
        response = self._inner(url, method=method, body=body, headers=headers, timeout=timeout or 10, **kwargs)
        if method == "GET" and response.status == 200:
            with self._lock:
                self._cache[url] = (now, response)
        return response


_CERTS = _CachedCertsRequest()


def retry_count(header: str | None) -> int:
    """X-CloudTasks-TaskRetryCount: 0 on the first attempt."""
    try:
        return max(0, int(header or "0"))
    except ValueError:
        return 0


# -- the message -------------------------------------------------------------------------


def stale_reason(message: TaskMessage, row: Row | None) -> str | None:
    """Why the message no longer describes the appointment, or None if it still does."""
    if row is None:
        return "no such appointment"
    if message.kind == "CANCELLATION":
        return None if row["status"] == "CANCELLED" else f"the appointment is {row['status']}, not cancelled"
    if row["status"] != "BOOKED":
        return f"the appointment is {row['status']}"
    if row["slot_id"] != message.slot_id or row["start_time"] != message.start_time:
        # A reminder or confirmation for the old time; the RESCHEDULED notice covers it.
        return "the appointment has moved since"
    if row["started"]:
        # A confirmation or move notice retried (or resent) past the start tells the
        # patient nothing they can still act on; only a cancellation says something new.
        return "the appointment has already started"
    return None


def deliver(message: TaskMessage, retry: int = 0) -> Outcome:
    """Sends the message once if it is still true; raises Unavailable to be retried."""
    settings = get_settings()
    channel = CHANNELS[message.channel]
    attempt = retry + 1
    fields = {
        "message_key": message.message_key,
        "appointment_id": str(message.appointment_id),
        "kind": message.kind,
        "attempt": attempt,
    }
    recipient = ""
    try:
        with UnitOfWork() as uow:
            state = uow.tx.first(
                SQL.select_message_state, appointment_id=message.appointment_id, message_key=message.message_key
            )
        reason = stale_reason(message, state)
        if reason is not None or state is None:
            return skipped(reason, fields)
        if state["sent"]:
            return duplicate(fields)
        address = channel.address(state)
        if address is None:
            return skipped(f"the patient has no {message.channel} address", fields)
        recipient = address
        # Connected and signed in before the appointment is locked: a slow or unreachable
        # channel must not hold up a patient's cancel or move.
        with channel.connect(settings) as connection, UnitOfWork() as uow:
            outcome = _send_once(uow.tx, channel, connection, message, attempt, fields)
            if outcome.result == "sent":
                uow.commit()
    except (DatabaseUnavailable, Busy):
        log_if_lost(attempt, fields, message.model_dump(mode="json"))
        raise
    except channels.MessageRejected as error:
        return _give_up(message, recipient, attempt, error, fields)
    except channels.ChannelUnavailable as error:
        if attempt >= settings.tasks_max_attempts:
            return _give_up(message, recipient, attempt, error, fields)
        raise retry_later(channel.carrier, error, fields) from error
    if outcome.result == "sent":
        log_sent(fields)
    return outcome


def _send_once(
    tx: Transaction,
    channel: channels.Channel,
    connection: channels.Connection,
    message: TaskMessage,
    attempt: int,
    fields: dict[str, Any],
) -> Outcome:
    """Under the appointment's lock: checks the message again, records it SENT and sends
    it. Sent inside the transaction: if sending fails the SENT row rolls back."""
    row = tx.first(SQL.lock_message_context, appointment_id=message.appointment_id)
    reason = stale_reason(message, row)  # again, now that a change has to wait for us
    if reason is not None or row is None:
        return skipped(reason, fields)
    recipient = channel.address(row)
    if recipient is None:
        return skipped(f"the patient has no {message.channel} address", fields)
    changes_told = _changes_told(tx, message)
    if _overtaken(message, changes_told):
        return skipped("a later change's notice has already been sent", fields)
    last_told = _last_told(message, changes_told)
    calendar = tx.one(
        SQL.select_calendar_context,
        appointment_id=message.appointment_id,
        audit_id=message.audit_id,
        told_audit_id=last_told,
    )
    previous = _previous(calendar, row) if message.kind in TELLS_A_CHANGE else None
    if message.kind == "RESCHEDULED" and previous is None and last_told is not None:
        # Moved away and back before any notice of the first move went out: the
        # patient's last notice is still true, and "moved" would tell them nothing.
        return skipped("unchanged since the patient's last notice", fields)
    try:
        with tx.savepoint():
            _record(tx, message, recipient, "SENT", attempt, None)
    except IntegrityViolation as error:
        if error.constraint != "notifications_one_sent_per_message":
            raise
        return duplicate(fields)
    notice = mail.Notice(
        kind=message.kind,
        message_key=message.message_key,
        appointment_id=str(row["id"]),
        recipient=recipient,
        patient_name=row["patient_name"],
        doctor_name=row["doctor_name"],
        timezone=row["doctor_timezone"],
        start=row["start_time"],
        end=row["end_time"],
        sequence=int(calendar["changes"]),
        previous=previous,
        trace=logs.trace_id(),
    )
    connection.send_notice(notice)
    return Outcome("sent", f"{message.kind.lower()} sent")


def _changes_told(tx: Transaction, message: TaskMessage) -> list[int]:
    """The changes behind the confirmations and move notices this appointment's patient
    was sent (their audit ids): what they have heard. A reminder does not ask."""
    if message.kind not in (*TELLS_A_CHANGE, "CONFIRMATION") or message.audit_id is None:
        return []
    sent = tx.all(SQL.select_told_notices, appointment_id=message.appointment_id, channel=message.channel)
    return [audit_id for notice in sent if (audit_id := audit_id_of(notice["kind"], notice["message_key"])) is not None]


def _overtaken(message: TaskMessage, changes_told: list[int]) -> bool:
    """A confirmation or move notice retried (or delayed) past the notice of a later
    change, even with the appointment back where it said: the patient has heard since
    where it is, so a confirmation would say it twice, and a move's "was" would name a
    time they no longer knew."""
    return message.kind in ("CONFIRMATION", "RESCHEDULED") and any(
        audit_id > (message.audit_id or 0) for audit_id in changes_told
    )


def _last_told(message: TaskMessage, changes_told: list[int]) -> int | None:
    """The newest change the patient heard of before the one this notice is about."""
    return max((audit_id for audit_id in changes_told if audit_id < (message.audit_id or 0)), default=None)


def _previous(calendar: Row, row: Row) -> mail.Previous | None:
    """Where the patient last knew the appointment to be (their last notice, or else what
    they booked), if not where it is now."""
    if calendar["was_start_time"] is None or calendar["was_end_time"] is None:
        return None
    # A move recorded before the trail named both doctors was to the same doctor.
    doctor_id = calendar["was_doctor_id"] or row["doctor_id"]
    if calendar["was_start_time"] == row["start_time"] and doctor_id == row["doctor_id"]:
        return None  # moved away and back: nothing changed for them
    return mail.Previous(
        start=calendar["was_start_time"],
        end=calendar["was_end_time"],
        doctor_name=calendar["was_doctor_name"] or row["doctor_name"],
        timezone=calendar["was_doctor_timezone"] or row["doctor_timezone"],
    )


def _record(tx: Any, message: TaskMessage, recipient: str, status: str, attempt: int, error: str | None) -> None:
    tx.one(
        SQL.insert_notification,
        appointment_id=message.appointment_id,
        message_key=message.message_key,
        kind=message.kind,
        channel=message.channel,
        recipient=recipient,
        status=status,
        attempts=attempt,
        error=error,
    )


def _give_up(message: TaskMessage, recipient: str, attempt: int, error: Exception, fields: dict[str, Any]) -> Outcome:
    with UnitOfWork() as uow:
        _record(uow.tx, message, recipient, "FAILED", attempt, str(error)[:1000])
        uow.commit()
    return failed(error, fields, "recorded as FAILED")


# -- the outcome lines (what modules/monitoring counts), shared with the waitlist's offers --


def skipped(reason: str | None, fields: dict[str, Any]) -> Outcome:
    log.info("nothing to send: %s", reason, extra={"fields": {**fields, "outcome": "skipped"}})
    return Outcome("skipped", reason or "no such appointment")


def duplicate(fields: dict[str, Any]) -> Outcome:
    log.info("already sent; duplicate delivery ignored", extra={"fields": {**fields, "outcome": "duplicate"}})
    return Outcome("duplicate", "this message was already sent")


def log_sent(fields: dict[str, Any]) -> None:
    log.info("sent", extra={"fields": {**fields, "outcome": "sent"}})


def retry_later(carrier: str, error: Exception, fields: dict[str, Any]) -> Unavailable:
    """What to raise when the channel is down before the last attempt (a 503)."""
    log.warning(
        "%s unavailable; Cloud Tasks will retry",
        carrier,
        extra={"fields": {**fields, "outcome": "retry", "error": str(error)}},
    )
    return Unavailable(f"the {carrier} is unavailable; try again later")


def failed(error: Exception, fields: dict[str, Any], detail: str) -> Outcome:
    """Given up for good: answered 200, so Cloud Tasks drops the task."""
    log.error("message FAILED for good", extra={"fields": {**fields, "outcome": "failed", "error": str(error)}})
    return Outcome("failed", detail)


def log_if_lost(attempt: int, fields: dict[str, Any], payload: dict[str, Any]) -> None:
    """On the queue's last attempt Cloud Tasks drops the task after this answer, and no
    FAILED row can be written for `clinic resend-failed`: the log line is its only trace."""
    if attempt >= get_settings().tasks_max_attempts:
        log.error(
            "message LOST: the database was unavailable or busy on the queue's last attempt",
            extra={"fields": {**fields, "outcome": "lost", "payload": payload}},
        )
