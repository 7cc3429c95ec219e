"""The waitlist (decision 0013): joining, leaving, and the hold of a freed slot for the
earliest-joined matching entry, offered, accepted, declined or expired.

A use case reads as its steps: authorise, lock, check, write, trail, outbox. A hold is
written in the transaction that freed the slot (`offer_freed_slot`), and the slot row
carries it, so a booking that raced the freeing transaction sees it (decision 0013).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any, Literal, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from shared import logs, mail, paging
from shared.auth import Caller
from shared.channels import ChannelUnavailable, MessageRejected
from shared.errors import (
    AlreadyBookedInRange,
    Busy,
    DatabaseUnavailable,
    Forbidden,
    NotFound,
    OfferEnded,
    TooManyEntries,
    Unprocessable,
)
from shared.models import (
    Appointment,
    AppointmentCreate,
    Offer,
    WaitlistCreate,
    WaitlistEntry,
    WaitlistList,
    WaitlistQuery,
)
from shared.policy import Action, allows, authorise, covers_anyone
from shared.repositories import Accounts, Appointments, Holds, Patients, Row, Waitlist
from shared.settings import get_settings
from shared.unit_of_work import UnitOfWork

sweep_log = logs.get("clinic.waitlist")

# The offer is an email of its own (not a Notice), sent over the email channel's relay.
EMAIL = mail.Email()

# How far ahead an entry's range may reach.
MAX_AHEAD = timedelta(days=366)


def authorise_entry(caller: Caller, action: Action, entry: Row) -> None:
    """Another patient's entry (or another doctor's) reads as missing."""
    if not allows(caller, action, owners=[entry["patient_id"], entry["doctor_id"]]):
        raise NotFound("no such waitlist entry")


class Work(Protocol):
    """What these use cases need of a unit of work (a fake one in unit tests)."""

    accounts: Accounts
    patients: Patients
    appointments: Appointments
    holds: Holds
    waitlist: Waitlist

    def add_outbox_rows(self, rows: list[dict[str, Any]]) -> None: ...


# -- joining, listing, leaving ---------------------------------------------------------


def join(uow: Work, caller: Caller, body: WaitlistCreate) -> WaitlistEntry:
    authorise(caller, Action.JOIN_WAITLIST)
    uow.accounts.ensure(caller)
    if not covers_anyone(caller, Action.JOIN_WAITLIST):
        if body.patient_id not in (None, caller.id):
            raise Forbidden("a patient joins only for themself")
        patient_id = caller.id
        # As a first booking does: a patient who never filled in a profile gets one, empty.
        uow.patients.ensure_profile(caller.id)
    else:
        if body.patient_id is None:
            raise Unprocessable("the front desk joins for a patient: give 'patient_id'")
        patient_id = body.patient_id
    if uow.patients.get(patient_id) is None:
        raise NotFound("no such patient")
    zone = uow.waitlist.doctor_zone(body.doctor_id)
    if zone is None:
        raise NotFound("no such doctor")
    range_start, range_end = _range(body, zone)
    now = datetime.now(UTC)
    if range_end <= now:
        raise Unprocessable("the range is in the past")
    if range_start > now + MAX_AHEAD:
        raise Unprocessable("the range starts more than a year ahead")
    if range_end > now + MAX_AHEAD + timedelta(days=1):
        raise Unprocessable("the range reaches more than a year ahead")
    settings = get_settings()
    uow.waitlist.take_turn(patient_id)
    # An entry ends when its patient books that doctor in its range: one that would be
    # over at once is refused, rather than listed as BOOKED and revived by a cancellation.
    booked = uow.waitlist.booked_between(patient_id, body.doctor_id, range_start, range_end)
    if booked is not None:
        who = "you already have" if patient_id == caller.id else "the patient already has"
        raise AlreadyBookedInRange(
            f"{who} an appointment with this doctor on {booked.astimezone(ZoneInfo(zone)):%Y-%m-%d at %H:%M}"
            f" ({zone}), between {body.from_} and {body.to}: cancel it, or choose dates without it"
        )
    active = uow.waitlist.count_active(patient_id)
    if active >= settings.waitlist_max_entries:
        raise TooManyEntries(
            f"the patient already waits on {active} waitlists, the most allowed is"
            f" {settings.waitlist_max_entries}; leave one to join another"
        )
    row = uow.waitlist.add_entry(
        patient_id,
        body.doctor_id,
        range_start,
        range_end,
        body.start,
        None if body.end is None else _day_end(body.end),
        caller.id,
    )
    _outbox(uow, str(row["doctor_id"]), [_event("joined", row, None, row["event_id"], row["occurred_at"])])
    return _entry(row)


def _range(body: WaitlistCreate, zone_name: str) -> tuple[datetime, datetime]:
    """The doctor's days `from`..`to`, as instants (midnight to midnight in their zone)."""
    zone = ZoneInfo(zone_name)
    start = datetime.combine(body.from_, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(body.to + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def _day_end(end: time) -> time:
    # 24:00 (read as 00:00) ends the day: the last instant of it, as a time can hold.
    return time(23, 59, 59, 999999) if end == time(0) else end


def list_entries(uow: Work, caller: Caller, query: WaitlistQuery) -> WaitlistList:
    authorise(caller, Action.SEE_WAITLIST_ENTRY)
    uow.accounts.check_reader(caller)
    # Anyone's to those who may see anyone's; else their own, as patient or as doctor.
    mine = None if covers_anyone(caller, Action.SEE_WAITLIST_ENTRY) else caller.id
    as_patient = allows(caller, Action.HOLD_APPOINTMENTS)
    after = paging.decode(query.page_token, {"created": paging.timestamp, "id": paging.uuid})
    rows = uow.waitlist.page(
        patient_id=mine if as_patient else None,
        doctor_id=None if as_patient else mine,
        active=query.active,
        after=(after["created"], after["id"]) if after else None,
        limit=query.page_size + 1,
    )
    items = [_entry(row) for row in rows[: query.page_size]]
    token = None
    if len(rows) > query.page_size:
        token = paging.encode({"created": items[-1].created_at.isoformat(), "id": items[-1].id})
    return WaitlistList(items=items, next_page_token=token)


def leave(uow: Work, caller: Caller, entry_id: UUID) -> None:
    """Leaves the waitlist; an open offer is declined with it (the slot goes on)."""
    uow.accounts.ensure(caller)
    entry = _visible_entry(uow, caller, Action.LEAVE_WAITLIST, entry_id, lock=True)
    if entry["status"] in ("LEFT", "BOOKED"):
        return  # already over: leaving again changes nothing
    if entry["status"] == "OFFERED":
        offer = uow.waitlist.open_offer(entry_id)
        if offer is not None:
            _end_offer(uow, offer, "DECLINED", caller.id, entry_status="LEFT")
    updated = uow.waitlist.set_entry_status(entry_id, "LEFT")
    event_id, occurred_at = uow.waitlist.record_event(entry_id, None, None, "LEFT", caller.id, {})
    _outbox(uow, str(updated["doctor_id"]), [_event("left", updated, None, event_id, occurred_at)])


def _visible_entry(uow: Work, caller: Caller, action: Action, entry_id: UUID, lock: bool = False) -> Row:
    """The entry the caller may act on (another's reads as missing)."""
    authorise(caller, action)
    entry = uow.waitlist.get_entry(entry_id, lock=lock)
    if entry is None:
        raise NotFound("no such waitlist entry")
    authorise_entry(caller, action, entry)
    return entry


# -- the hold -------------------------------------------------------------------------


class HoldWork(Protocol):
    """What holding a freed slot needs of a unit of work."""

    holds: Holds

    def add_outbox_rows(self, rows: list[dict[str, Any]]) -> None: ...


def offer_freed_slot(uow: HoldWork, slot_id: UUID, actor_id: UUID | None, freed_by: str) -> bool:
    """Holds a slot that just became free for the earliest-joined matching entry, in the
    caller's unit of work, with its messages (the email, the expiry, the event). Nothing
    when no entry matches (False): the slot is free to everyone."""
    row = uow.holds.hold_for_next_entry(slot_id, actor_id, freed_by)
    if row is None:
        return False
    offer_id = str(row["id"])
    expiry_name = f"offer-{offer_id}-expiry"
    email_name = f"offer-{offer_id}-email"
    _outbox(
        uow,
        str(row["slot_id"]),
        [
            _task(email_name, {"message_key": email_name, "offer_id": offer_id, "kind": "WAITLIST_OFFER"}, None),
            _task(
                expiry_name,
                {"message_key": expiry_name, "offer_id": offer_id, "kind": "OFFER_EXPIRY"},
                row["expires_at"],
            ),
            _event("offered", {"id": row["entry_id"], **row}, row, row["event_id"], row["occurred_at"]),
        ],
    )
    return True


def accept(uow: Work, caller: Caller, entry_id: UUID, offer_id: UUID | None = None) -> Appointment:
    """Books the held slot for the entry's patient. Idempotent: accepting an offer already
    accepted answers its appointment. With `offer_id` (the offer the patient was shown),
    any other offer is refused: a late click must not book a slot offered since."""
    uow.accounts.ensure(caller)
    entry = _visible_entry(uow, caller, Action.ANSWER_OFFER, entry_id)
    offer = uow.waitlist.open_offer(entry_id)
    if offer is None:
        done = uow.waitlist.accepted_appointment(entry_id, offer_id)
        if done is not None:
            from shared import appointments

            return appointments.get_appointment(uow, caller, done)
        raise OfferEnded("there is no open offer on this waitlist entry (it expired or was declined)")
    _check_shown(offer, offer_id)
    if offer["expired"]:
        raise OfferEnded("the offer has expired")
    uow.holds.lock_slot(offer["slot_id"])
    uow.waitlist.release_hold(offer["slot_id"], offer["id"])
    booking = AppointmentCreate(slot_id=offer["slot_id"], patient_id=entry["patient_id"])
    from shared import appointments  # appointments calls this module when a slot frees

    appointment = appointments.book(uow, caller, booking)
    ended = uow.waitlist.end_offer(offer["id"], "ACCEPTED", appointment.id)
    updated = uow.waitlist.set_entry_status(entry_id, "BOOKED")
    event_id, occurred_at = uow.waitlist.record_event(
        entry_id, offer["id"], offer["slot_id"], "ACCEPTED", caller.id, {"appointment_id": str(appointment.id)}
    )
    _outbox(uow, str(offer["slot_id"]), [_event("accepted", updated, {**offer, **ended}, event_id, occurred_at)])
    return appointment


def decline(uow: Work, caller: Caller, entry_id: UUID, offer_id: UUID | None = None) -> None:
    """Declines the open offer (only the one shown, given `offer_id`); the slot goes to
    the next matching entry, or is free."""
    uow.accounts.ensure(caller)
    _visible_entry(uow, caller, Action.ANSWER_OFFER, entry_id)
    offer = uow.waitlist.open_offer(entry_id)
    if offer is None:
        raise OfferEnded("there is no open offer on this waitlist entry")
    _check_shown(offer, offer_id)
    _end_offer(uow, offer, "DECLINED", caller.id, entry_status="WAITING")


def _check_shown(offer: Row, offer_id: UUID | None) -> None:
    """The open offer is the one the patient answered (when they say which)."""
    if offer_id is not None and offer["id"] != offer_id:
        raise OfferEnded(
            "the offer you answered has ended; this entry now holds another offer (another time):"
            " look at it before you answer"
        )


def expire(uow: Work, offer_id: UUID) -> bool:
    """Ends an offer past its time (the expiry task, or the sweep); False if it was
    answered first or is not due yet."""
    offer = uow.waitlist.lock_offer(offer_id)
    if offer is None or offer["status"] != "OFFERED" or not offer["expired"]:
        return False
    _end_offer(uow, offer, "EXPIRED", None, entry_status="WAITING")
    return True


def _end_offer(uow: Work, offer: Row, status: str, actor_id: UUID | None, entry_status: str) -> None:
    """Ends a locked open offer unaccepted: the hold goes, the entry waits again (or has
    left), and the slot is offered to the next matching entry in the same transaction."""
    uow.holds.lock_slot(offer["slot_id"])
    uow.waitlist.release_hold(offer["slot_id"], offer["id"])
    ended = uow.waitlist.end_offer(offer["id"], status, None)
    entry = uow.waitlist.set_entry_status(offer["entry_id"], entry_status)
    event_id, occurred_at = uow.waitlist.record_event(
        offer["entry_id"], offer["id"], offer["slot_id"], status, actor_id, {}
    )
    _outbox(uow, str(offer["slot_id"]), [_event(status.lower(), entry, {**offer, **ended}, event_id, occurred_at)])
    offer_freed_slot(uow, offer["slot_id"], actor_id, f"offer {status.lower()}")
    if entry_status == "WAITING":
        offer_waiting_entry(uow, offer["entry_id"], actor_id)


def offer_waiting_entry(uow: Work, entry_id: UUID, actor_id: UUID | None, tries: int = 3) -> None:
    """An entry that waits again may match a slot freed while it held another offer (and
    so passed over, with no one else waiting): that slot is held now, for the earliest
    matching entry (this one, or one that joined before it)."""
    lead = get_settings().waitlist_lead_minutes
    for _ in range(tries):
        slot_id = uow.waitlist.lock_free_slot_for(entry_id, lead)
        if slot_id is None:
            return
        offer_freed_slot(uow, slot_id, actor_id, "entry waiting again")
        if uow.waitlist.is_offered(entry_id):
            return


def expire_due(limit: int = 100) -> int:
    """The sweep's safety net: expires offers past their time whose task was lost or
    late. Each in its own transaction, so one failure does not hold up the rest."""
    with UnitOfWork() as uow:
        due = uow.waitlist.expired_offers(limit)
    expired = 0
    for offer_id in due:
        try:
            with UnitOfWork() as uow:
                ended = expire(uow, offer_id)
                uow.commit()
            expired += int(ended)
        except Exception:
            # One offer that cannot end must not keep the others held; the alert on
            # overdue holds names it if it goes on.
            sweep_log.exception("waitlist offer could not expire", extra={"fields": {"offer_id": str(offer_id)}})
    return expired


def offer_passed_over(limit: int = 100) -> int:
    """The sweep's second net: a waiting entry that matches a free slot it was never
    offered (the two changes that would have met ran at once) gets it held now."""
    lead = get_settings().waitlist_lead_minutes
    with UnitOfWork() as uow:
        entries = uow.waitlist.passed_over_entries(lead, limit)
    for entry_id in entries:
        with UnitOfWork() as uow:
            offer_waiting_entry(uow, entry_id, None)
            uow.commit()
    return len(entries)


def sweep() -> dict[str, int]:
    """Both nets, then one line on the holds still past their time, which the
    waitlist-hold alert reads (infra/terraform/modules/monitoring)."""
    result = {"offers_expired": expire_due(), "entries_passed_over": offer_passed_over()}
    with UnitOfWork() as uow:
        overdue = uow.waitlist.overdue_holds()
    return report_sweep(result, overdue)


def report_sweep(result: dict[str, int], overdue: Row) -> dict[str, int]:
    result = {
        **result,
        "overdue_holds": int(overdue["overdue"]),
        "oldest_overdue_hold_s": int(overdue["oldest_overdue_s"]),
    }
    sweep_log.info("waitlist swept", extra={"fields": result})
    return result


# -- the outbox ------------------------------------------------------------------------


def _instant(value: Any) -> Any:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def _event(kind: str, entry: Row, offer: Row | None, event_id: int, occurred_at: datetime) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": f"waitlist.{kind}",
        "entry": {
            "id": str(entry["id"]),
            "patient_id": str(entry["patient_id"]),
            "doctor_id": str(entry.get("doctor_id")),
        },
        "event_id": int(event_id),
        "occurred_at": _instant(occurred_at),
    }
    if offer is not None:
        payload["offer"] = {
            "id": str(offer["id"]),
            "slot_id": str(offer["slot_id"]),
            "status": str(offer["status"]),
            "expires_at": _instant(offer["expires_at"]),
        }
    return {"target": "EVENT", "name": f"waitlist-{event_id}", "payload": payload, "deliver_at": _instant(occurred_at)}


def _task(name: str, payload: dict[str, Any], deliver_at: datetime | None) -> dict[str, Any]:
    when = deliver_at or datetime.now(UTC)
    return {"target": "TASK", "name": name, "payload": payload, "deliver_at": _instant(when)}


def _outbox(uow: HoldWork, ordering_key: str, rows: list[dict[str, Any]]) -> None:
    """A waitlist step's messages, with the slot (or doctor) as the events' ordering key."""
    uow.add_outbox_rows([{**row, "appointment_id": None, "ordering_key": ordering_key} for row in rows])


def _entry(row: Row) -> WaitlistEntry:
    offer = None
    if row.get("offer_id") is not None:
        offer = Offer(
            id=row["offer_id"],
            slot_id=row["offer_slot_id"],
            start_time=row["offer_start_time"],
            end_time=row["offer_end_time"],
            expires_at=row["offer_expires_at"],
        )
    status = row["status"]
    if status == "WAITING" and row.get("booked_in_range"):
        status = "BOOKED"  # the patient booked that doctor in the range: the entry is over
    elif status in ("WAITING", "OFFERED") and row.get("past"):
        status = "ENDED"
    return WaitlistEntry(
        id=row["id"],
        patient_id=row["patient_id"],
        doctor_id=row["doctor_id"],
        range_start=row["range_start"],
        range_end=row["range_end"],
        start=row["day_start"],
        end=None
        if row["day_end"] is None
        else (time(0) if row["day_end"] == time(23, 59, 59, 999999) else row["day_end"]),
        status=status,
        created_at=row["created_at"],
        offer=offer,
    )


# -- the tasks (notify) ------------------------------------------------------------------


class WaitlistTask(BaseModel):
    """A waitlist task's body, as `offer_freed_slot` writes it."""

    model_config = ConfigDict(extra="forbid")

    message_key: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")
    offer_id: UUID
    kind: Literal["WAITLIST_OFFER", "OFFER_EXPIRY"]


def run_task(task: WaitlistTask, retry: int = 0) -> dict[str, str]:
    if task.kind == "OFFER_EXPIRY":
        with UnitOfWork() as uow:
            expired = expire(uow, task.offer_id)
            uow.commit()
        return {"result": "expired" if expired else "skipped", "detail": "offer expiry"}
    return send_offer_email(task, retry)


def send_offer_email(task: WaitlistTask, retry: int = 0) -> dict[str, str]:
    """Sends the offer once, while it is open, over the email channel; the offer row
    records that it went. Each attempt logs notify's outcome line (modules/monitoring
    counts them): a relay down answers 503 until the queue's last attempt, a refused
    address fails at once."""
    from shared import notify  # here, not at the top: the book function never needs it

    settings = get_settings()
    attempt = retry + 1
    fields = {"message_key": task.message_key, "offer_id": str(task.offer_id), "kind": task.kind, "attempt": attempt}
    try:
        # Read first, as notify's deliver does: an offer that ended while the relay was
        # down is skipped, not retried for hours.
        with UnitOfWork() as uow:
            if (done := _not_to_send(uow.waitlist.lock_offer_message(task.offer_id), fields)) is not None:
                return done
        with EMAIL.connect(settings) as relay, UnitOfWork() as uow:
            row = uow.waitlist.lock_offer_message(task.offer_id)
            if (done := _not_to_send(row, fields)) is not None:
                return done
            assert row is not None  # _not_to_send answered for a missing one
            uow.waitlist.mark_emailed(task.offer_id)
            relay.send(offer_message(row, task, settings.mail_from, settings.public_url), row["email"])
            uow.commit()
    except (DatabaseUnavailable, Busy):
        notify.log_if_lost(attempt, fields, task.model_dump(mode="json"))
        raise
    except MessageRejected as error:
        return notify.failed(error, fields, "the offer could not be sent").as_dict()
    except ChannelUnavailable as error:
        if attempt >= settings.tasks_max_attempts:
            return notify.failed(error, fields, "the offer could not be sent").as_dict()
        raise notify.retry_later(EMAIL.carrier, error, fields) from error
    notify.log_sent(fields)
    return {"result": "sent", "detail": "waitlist offer sent"}


def _not_to_send(row: Row | None, fields: dict[str, Any]) -> dict[str, str] | None:
    """The outcome of an offer that is not to be emailed (no longer open, or already sent)."""
    from shared import notify

    if row is None or row["status"] != "OFFERED":
        return notify.skipped("the offer is no longer open", fields).as_dict()
    if row["emailed_at"] is not None:
        return notify.duplicate(fields).as_dict()
    return None


def offer_message(row: Row, task: WaitlistTask, mail_from: str, public_url: str | None) -> EmailMessage:
    notice = mail.Notice(
        kind="CONFIRMATION",
        message_key=task.message_key,
        appointment_id=str(task.offer_id),
        recipient=row["email"],
        patient_name=row["name"],
        doctor_name=row["doctor_name"],
        timezone=row["timezone"],
        start=row["start_time"],
        end=row["end_time"],
    )
    expires = mail.local_time(row["expires_at"], row["timezone"])
    message = EmailMessage()
    message["From"] = mail_from
    try:
        message["To"] = row["email"]
        message["Subject"] = f"A time with {row['doctor_name']} is free for you"
    except ValueError as error:  # a line break in an address or name: no retry will help
        raise mail.MailRejected(f"the message cannot be written: {error}") from error
    message["Date"] = format_datetime(datetime.now(UTC))
    _, sender = parseaddr(mail_from)
    message["Message-ID"] = f"<{task.message_key}@{sender.partition('@')[2] or 'clinic.invalid'}>"
    message["X-Clinic-Message-Key"] = task.message_key
    message["X-Clinic-Offer"] = str(task.offer_id)
    message["X-Clinic-Kind"] = task.kind
    if trace := logs.trace_id():  # the trace of the cancellation that freed the time
        message["X-Clinic-Trace"] = trace
    link = f"{public_url.rstrip('/')}/#/appointments" if public_url else None
    body = (
        f"Hello {row['name']},\n\n"
        f"A time you were waiting for is free: {mail.when(notice)} with {row['doctor_name']}.\n"
        f"It is held for you until {expires:%H:%M} ({row['timezone']}). Accept it to book it;"
        " after that it goes to the next patient waiting.\n"
    )
    if link:
        body += f"\nAccept or decline: {link}\n"
    message.set_content(body)
    return message
