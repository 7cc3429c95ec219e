"""The emails the notify function sends: text and HTML parts, an .ics invitation, SMTP.

Times are shown in the doctor's time zone (where the patient goes); the calendar
entry carries UTC instants, which every calendar shows in the reader's own zone.
"""

from __future__ import annotations

import email.policy
import html
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.channels import ChannelUnavailable, MessageRejected
from shared.enums import NoticeKind
from shared.settings import Settings
from shared.text import one_line

_SUBJECT = {
    "CONFIRMATION": "Your appointment is confirmed",
    "REMINDER": "Reminder: your appointment",
    "CANCELLATION": "Your appointment was cancelled",
    "RESCHEDULED": "Your appointment was moved",
}
_LEAD = {
    "CONFIRMATION": "your appointment is booked.",
    "REMINDER": "this is a reminder of your upcoming appointment.",
    "CANCELLATION": "your appointment has been cancelled.",
    "RESCHEDULED": "your appointment has been moved to a new time.",
}


class MailUnavailable(ChannelUnavailable):
    """The relay could not take the message now; a later attempt may succeed."""


class MailRejected(MessageRejected):
    """The relay refused the message for good (an unknown recipient, say)."""


@dataclass(frozen=True)
class Previous:
    """Where a moved appointment was: its old time, in its old doctor's zone."""

    start: datetime
    end: datetime
    doctor_name: str
    timezone: str


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    message_key: str
    appointment_id: str
    recipient: str
    patient_name: str
    doctor_name: str
    timezone: str
    start: datetime
    end: datetime
    # The calendar entry's revision: 0 when booked, +1 for each move or cancellation.
    sequence: int = 0
    # A move's notice says where the appointment was, so the patient sees what changed.
    previous: Previous | None = None
    # The trace of the change the notice is about (32 hex digits), or None.
    trace: str | None = None


def _on_one_line(notice: Notice) -> Notice:
    """Names are refused with line breaks since, but one stored before, or an identity
    provider's, must neither break a header (no retry would mend that) nor add lines."""
    previous = notice.previous
    if previous is not None:
        previous = replace(previous, doctor_name=one_line(previous.doctor_name))
    return replace(
        notice,
        patient_name=one_line(notice.patient_name),
        doctor_name=one_line(notice.doctor_name),
        previous=previous,
    )


def local_time(instant: datetime, zone_name: str) -> datetime:
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return instant.astimezone(zone)


def when(notice: Notice | Previous) -> str:
    """`Tuesday, 3 December 2024, 09:00-09:30 (Europe/Berlin, CET)`. Across a change of the
    clocks each end has its own abbreviation, so an hour reads as one:
    `Sunday, 7 November 2027, 01:00 EDT-01:00 EST (America/New_York)`."""
    start, end = local_time(notice.start, notice.timezone), local_time(notice.end, notice.timezone)
    day = f"{start:%A}, {start.day} {start:%B %Y}"
    if start.tzname() == end.tzname():
        return f"{day}, {start:%H:%M}-{end:%H:%M} ({notice.timezone}, {start.tzname()})"
    return f"{day}, {start:%H:%M} {start.tzname()}-{end:%H:%M} {end.tzname()} ({notice.timezone})"


def _clock(local: datetime) -> str:
    """09:00; with the abbreviation where the clocks go back and the time comes twice."""
    twice = local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()
    return f"{local:%H:%M} {local.tzname()}" if twice else f"{local:%H:%M}"


def _was(previous: Previous) -> str:
    return f"{when(previous)}, with {previous.doctor_name}"


def _was_label(notice: Notice) -> str:
    # A cancellation names both times when the patient last heard of another one: the
    # one cancelled, and the one they knew, so they recognise the appointment.
    return "Moved from" if notice.kind == "CANCELLATION" else "Was"


def _wording(notice: Notice) -> NoticeKind:
    """The kind the text reads as: a move back to where the patient knew it to be (and
    never told otherwise) reads as a confirmation, since "moved" would say nothing."""
    return "CONFIRMATION" if notice.kind == "RESCHEDULED" and notice.previous is None else notice.kind


def subject(notice: Notice) -> str:
    start = local_time(notice.start, notice.timezone)
    # "=?" opens an RFC 2047 encoded word, which Python's email package decodes when the
    # header is set: one in a name could bring back the line breaks one_line took out
    # and add headers. With a space after the "=" it is text.
    doctor = notice.doctor_name.replace("=?", "= ?")
    return f"{_SUBJECT[_wording(notice)]}: {start.day} {start:%b %Y}, {_clock(start)} with {doctor}"


def manage_url(notice: Notice, public_url: str | None) -> str | None:
    """The app's page for this appointment (a hash route, so any host serving the app works)."""
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/#/appointments/{notice.appointment_id}"


def text_body(notice: Notice, link: str | None = None) -> str:
    lead = _LEAD[_wording(notice)]
    lines = [
        f"Hello {notice.patient_name},",
        "",
        f"{lead[0].upper()}{lead[1:]}",
        "",
        f"  Doctor: {notice.doctor_name}",
        f"  When:   {when(notice)}",
        *([f"  {_was_label(notice) + ':':<7} {_was(notice.previous)}"] if notice.previous else []),
        f"  Reference: {notice.appointment_id}",
        "",
    ]
    if notice.kind == "CANCELLATION":
        lines.append("If you did not ask for this, please book a new time or contact the clinic.")
    else:
        lines.append("To cancel or move it, use the clinic's app or website.")
    if link:
        lines += ["", f"Manage this appointment: {link}"]
    lines += ["", "Your clinic"]
    return "\n".join(lines) + "\n"


def html_body(notice: Notice, link: str | None = None) -> str:
    e = html.escape
    lead = _LEAD[_wording(notice)]
    was = (
        f'<tr><th align="left">{_was_label(notice)}</th><td>{e(_was(notice.previous))}</td></tr>'
        if notice.previous
        else ""
    )
    manage = f'<p><a href="{e(link)}">Manage this appointment</a></p>' if link else ""
    return (
        '<!doctype html><html><body style="font-family:sans-serif">'
        f"<p>Hello {e(notice.patient_name)},</p>"
        f"<p>{e(lead[0].upper() + lead[1:])}</p>"
        "<table>"
        f'<tr><th align="left">Doctor</th><td>{e(notice.doctor_name)}</td></tr>'
        f'<tr><th align="left">When</th><td>{e(when(notice))}</td></tr>'
        f"{was}"
        f'<tr><th align="left">Reference</th><td>{e(notice.appointment_id)}</td></tr>'
        "</table>"
        f"{manage}"
        "<p>Your clinic</p></body></html>"
    )


# -- iCalendar (RFC 5545) ----------------------------------------------------------------


def _ics_text(value: str) -> str:
    """A TEXT value (SUMMARY): backslash, ';' and ',' escaped, any line break as \\n."""
    escaped = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return escaped.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")


def _ics_param(value: str) -> str:
    """A parameter value (CN=...), quoted so that ':', ';' and ',' stay inside it (RFC 5545
    3.2); '^' and the double quote a quoted value cannot hold are written as RFC 6868 says."""
    return '"' + one_line(value).replace("^", "^^").replace('"', "^'") + '"'


def _ics_time(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _fold(line: str) -> str:
    """Content lines longer than 75 octets continue on lines starting with a space."""
    data = line.encode()
    if len(data) <= 75:
        return line
    parts: list[str] = []
    current = b""
    for char in line:
        encoded = char.encode()
        if len(current) + len(encoded) > (75 if not parts else 74):
            parts.append(current.decode())
            current = b""
        current += encoded
    parts.append(current.decode())
    return "\r\n ".join(parts)


def calendar_method(kind: NoticeKind) -> str | None:
    """REQUEST adds or updates the entry, CANCEL removes it; a reminder carries none."""
    return {"CONFIRMATION": "REQUEST", "RESCHEDULED": "REQUEST", "CANCELLATION": "CANCEL"}.get(kind)


def ics(notice: Notice, organizer: str, stamp: datetime | None = None) -> str:
    method = calendar_method(notice.kind)
    if method is None:
        raise ValueError(f"{notice.kind} carries no calendar entry")
    organizer_name, organizer_address = parseaddr(organizer)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Clinic//Appointments//EN",
        "CALSCALE:GREGORIAN",
        f"METHOD:{method}",
        "BEGIN:VEVENT",
        # Stable per appointment, so a move updates and a cancel removes the same entry.
        f"UID:{notice.appointment_id}@clinic",
        f"SEQUENCE:{notice.sequence}",
        f"DTSTAMP:{_ics_time(stamp or datetime.now(UTC))}",
        f"DTSTART:{_ics_time(notice.start)}",
        f"DTEND:{_ics_time(notice.end)}",
        f"SUMMARY:{_ics_text('Appointment with ' + notice.doctor_name)}",
        f"ORGANIZER;CN={_ics_param(organizer_name or 'Clinic')}:mailto:{organizer_address}",
        f"ATTENDEE;CN={_ics_param(notice.patient_name)};ROLE=REQ-PARTICIPANT;RSVP=FALSE:mailto:{notice.recipient}",
        f"STATUS:{'CANCELLED' if method == 'CANCEL' else 'CONFIRMED'}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"


# -- the message and its delivery -------------------------------------------------------


# Header lines up to RFC 5322's 998 characters are left whole: Python's folding of a long
# non-ASCII header (a doctor's name) splits it into encoded words and drops the space
# between two of them, so "Dr. Zoë Ünal" would read "ZoëÜnal".
_POLICY = email.policy.default.clone(max_line_length=998)


def compose(notice: Notice, settings: Settings, now: datetime | None = None) -> EmailMessage:
    now = now or datetime.now(UTC)
    notice = _on_one_line(notice)
    message = EmailMessage(policy=_POLICY)
    message["From"] = settings.mail_from
    try:
        message["To"] = notice.recipient
        message["Subject"] = subject(notice)
    except ValueError as error:  # a line break in an address or name: no retry will help
        raise MailRejected(f"the message cannot be written: {error}") from error
    message["Date"] = format_datetime(now)
    _, sender = parseaddr(settings.mail_from)
    # The same for every attempt at one message: should a message ever go out twice (the
    # relay took it, then the database lost the commit), mail clients show it once.
    message["Message-ID"] = f"<{notice.message_key}@{sender.partition('@')[2] or 'clinic.invalid'}>"
    # Ids only: lets support (and the tests) find a message without reading it.
    message["X-Clinic-Message-Key"] = notice.message_key
    message["X-Clinic-Appointment"] = notice.appointment_id
    message["X-Clinic-Kind"] = notice.kind
    if notice.trace:
        # Support finds the change's whole trail from an email: the Cloud Logging trace.
        message["X-Clinic-Trace"] = notice.trace
    link = manage_url(notice, settings.public_url)
    message.set_content(text_body(notice, link))
    message.add_alternative(html_body(notice, link), subtype="html")
    method = calendar_method(notice.kind)
    if method is not None:
        message.add_attachment(
            ics(notice, settings.mail_from, now).encode(),
            maintype="text",
            subtype="calendar",
            filename="appointment.ics",
            params={"method": method, "charset": "UTF-8"},
        )
    return message


class Relay:
    """One SMTP session: connected and signed in when made, so that the slow part of
    talking to a relay is over before the notify function locks anything."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        try:
            self._smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s)
            try:
                if settings.smtp_starttls:
                    self._smtp.starttls(context=ssl.create_default_context())
                if settings.smtp_username:
                    self._smtp.login(settings.smtp_username, settings.smtp_password or "")
            except BaseException:
                self._smtp.close()
                raise
        except (smtplib.SMTPException, OSError) as error:
            raise _classify(error) from error

    def send(self, message: EmailMessage, recipient: str) -> None:
        """Hands the message to the relay for this one recipient (never for whatever the
        To header might be read as); raises MailUnavailable or MailRejected."""
        try:
            self._smtp.send_message(message, to_addrs=[recipient])
        except (smtplib.SMTPException, OSError) as error:
            raise _classify(error) from error

    def send_notice(self, notice: Notice) -> None:
        """The notice as an email (shared.channels.Connection)."""
        self.send(compose(notice, self._settings), notice.recipient)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            self._smtp.close()


def _classify(error: smtplib.SMTPException | OSError) -> Exception:
    """MailRejected for a permanent refusal (5xx), MailUnavailable for the rest."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        if codes and all(500 <= code < 600 for code in codes):
            return MailRejected(f"recipient refused ({codes[0]})")
        return MailUnavailable(f"recipient deferred ({codes[0] if codes else '?'})")
    if isinstance(error, smtplib.SMTPSenderRefused | smtplib.SMTPDataError):
        if 500 <= error.smtp_code < 600:
            return MailRejected(f"message refused ({error.smtp_code})")
        return MailUnavailable(f"message deferred ({error.smtp_code})")
    if isinstance(error, smtplib.SMTPNotSupportedError):
        # An address that needs SMTPUTF8 (non-ASCII) and a relay without it: no retry helps.
        return MailRejected(f"the relay cannot take this message: {error}")
    # Connection refused, timeouts, TLS and login trouble: the relay or its
    # configuration; a later attempt may succeed.
    return MailUnavailable(f"{type(error).__name__}: {error}")


class Email:
    """The email channel (shared.channels.Channel): to the patient's address, over SMTP."""

    carrier = "mail relay"

    def address(self, contact: Mapping[str, Any]) -> str | None:
        return str(contact["patient_email"])

    def connect(self, settings: Settings) -> Relay:
        return Relay(settings)
