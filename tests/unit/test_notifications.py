"""Pure parts of notifications: the .ics, the email, task names and requests, the payload model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

import icalendar
import pytest
from pydantic import ValidationError

from shared import dispatch, mail, outbox
from shared.notify import TaskMessage, retry_count, stale_reason
from shared.settings import Settings
from shared.text import one_line

APPOINTMENT = uuid.UUID("4b0f6a43-1111-4000-8000-000000000001")
SLOT = uuid.UUID("4b0f6a43-2222-4000-8000-000000000002")
START = datetime(2024, 12, 3, 8, 0, tzinfo=UTC)


def notice(kind: mail.Kind = "CONFIRMATION", **changes: Any) -> mail.Notice:
    values: dict[str, Any] = dict(
        kind=kind,
        message_key=f"{APPOINTMENT}-{kind.lower()}-1733212800-42",
        appointment_id=str(APPOINTMENT),
        recipient="pat@example.com",
        patient_name="Zoë O'Brien, Jr.",
        doctor_name="Dr. Anna Weiß",
        timezone="Europe/Berlin",
        start=START,
        end=START + timedelta(minutes=30),
        sequence=0,
    )
    values.update(changes)
    return mail.Notice(**values)


SETTINGS = Settings(mail_from="Clinic <no-reply@clinic.example>")


def test_times_are_shown_in_the_doctors_zone() -> None:
    assert mail.when(notice()) == "Tuesday, 3 December 2024, 09:00-09:30 (Europe/Berlin, CET)"
    summer = notice(start=datetime(2024, 7, 1, 7, 0, tzinfo=UTC), end=datetime(2024, 7, 1, 7, 30, tzinfo=UTC))
    assert "09:00-09:30 (Europe/Berlin, CEST)" in mail.when(summer)
    tokyo = notice(timezone="Asia/Tokyo")
    assert mail.when(tokyo) == "Tuesday, 3 December 2024, 17:00-17:30 (Asia/Tokyo, JST)"
    assert "09:00" in mail.subject(notice()) and "Dr. Anna Weiß" in mail.subject(notice())


def test_across_a_change_of_the_clocks_each_end_has_its_own_abbreviation() -> None:
    """Hour-long visits of a New York doctor on the days the clocks change (the slots
    DESIGN.md counts in real elapsed time)."""
    fall_back = datetime(2027, 11, 7, 5, 0, tzinfo=UTC)  # 01:00 EDT; an hour later, 01:00 EST
    back = notice(timezone="America/New_York", start=fall_back, end=fall_back + timedelta(hours=1))
    assert mail.when(back) == "Sunday, 7 November 2027, 01:00 EDT-01:00 EST (America/New_York)"
    spring_forward = datetime(2027, 3, 14, 6, 0, tzinfo=UTC)  # 01:00 EST; an hour later, 03:00 EDT
    forward = notice(timezone="America/New_York", start=spring_forward, end=spring_forward + timedelta(hours=1))
    assert mail.when(forward) == "Sunday, 14 March 2027, 01:00 EST-03:00 EDT (America/New_York)"
    # 01:00 comes twice that November night: the subject says which.
    second = notice(
        timezone="America/New_York", start=fall_back + timedelta(hours=1), end=fall_back + timedelta(hours=2)
    )
    assert "7 Nov 2027, 01:00 EDT with" in mail.subject(back)
    assert "7 Nov 2027, 01:00 EST with" in mail.subject(second)
    assert "14 Mar 2027, 01:00 with" in mail.subject(forward)  # only once that day: as usual


def test_an_unknown_zone_falls_back_to_utc() -> None:
    assert "08:00-08:30 (Mars/Olympus, UTC)" in mail.when(notice(timezone="Mars/Olympus"))


def test_confirmation_is_text_html_and_a_request_invitation() -> None:
    message = mail.compose(notice(), SETTINGS, now=START - timedelta(days=2))
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert [p.get_content_type() for p in parsed.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    assert parsed["To"] == "pat@example.com" and parsed["X-Clinic-Kind"] == "CONFIRMATION"
    html = parsed.get_body(("html",))
    assert html is not None and "O&#x27;Brien" in html.get_content()  # escaped
    attachment = next(p for p in parsed.walk() if p.get_content_type() == "text/calendar")
    assert attachment.get_param("method") == "REQUEST" and attachment.get_filename() == "appointment.ics"


def a_day_earlier_in_tokyo(doctor_name: str) -> mail.Previous:
    return mail.Previous(
        start=START - timedelta(days=1),
        end=START - timedelta(days=1, minutes=-30),
        doctor_name=doctor_name,
        timezone="Asia/Tokyo",
    )


def test_a_move_notice_says_where_the_appointment_was() -> None:
    was = a_day_earlier_in_tokyo("Dr. <Old>")
    message = mail.compose(notice("RESCHEDULED", previous=was), SETTINGS)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "Was:    Monday, 2 December 2024, 17:00-17:30 (Asia/Tokyo, JST), with Dr. <Old>" in text.get_content()
    assert (
        '<th align="left">Was</th><td>Monday, 2 December 2024, 17:00-17:30 (Asia/Tokyo, JST), with Dr. &lt;Old&gt;'
        in html.get_content()
    )
    # Back where the patient knew it to be: it reads as a confirmation, not as "moved".
    back = mail.compose(notice("RESCHEDULED"), SETTINGS)
    plain = back.get_body(("plain",))
    assert plain is not None and "Was:" not in plain.get_content() and "moved" not in plain.get_content()
    assert str(back["Subject"]).startswith("Your appointment is confirmed:")
    assert back["X-Clinic-Kind"] == "RESCHEDULED"


def test_a_cancellation_after_a_move_names_both_times() -> None:
    was = a_day_earlier_in_tokyo("Dr. Old")
    text = mail.compose(notice("CANCELLATION", previous=was), SETTINGS).get_body(("plain",))
    assert text is not None
    assert "When:   Tuesday, 3 December 2024, 09:00-09:30 (Europe/Berlin, CET)" in text.get_content()
    assert "Moved from: Monday, 2 December 2024, 17:00-17:30 (Asia/Tokyo, JST), with Dr. Old" in text.get_content()


@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r", "\t", "\u2028", "\x85", "\x00"])
def test_a_name_with_a_line_break_still_makes_one_line(breaker: str) -> None:
    """Refused by the API since; one stored before, or an identity provider's, must neither
    fail the message for good nor add lines to it."""
    sneaky = f"Dr. Evil{breaker}Bcc: spy@evil.example"
    was = mail.Previous(start=START, end=START, doctor_name=sneaky, timezone="UTC")
    message = mail.compose(notice("RESCHEDULED", doctor_name=sneaky, patient_name=sneaky, previous=was), SETTINGS)
    read = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert read["Bcc"] is None and "Dr. Evil Bcc: spy@evil.example" in read["Subject"]
    text = read.get_body(("plain",))
    assert text is not None and not any(line.startswith("Bcc") for line in text.get_content().splitlines())
    assert "Hello Dr. Evil Bcc: spy@evil.example," in text.get_content()


def test_an_encoded_word_in_a_name_stays_text_in_the_subject() -> None:
    """Python's email package decodes RFC 2047 encoded words in a header it is given:
    one in a doctor's name must not turn into line breaks and headers."""
    forged = "Dr =?utf-8?q?Who=0D=0ABcc=3A_evil=40attacker=2Eexample=0D=0A=0D=0AYour_appointment_was_cancelled=2E?="
    read = message_from_bytes(mail.compose(notice(doctor_name=forged), SETTINGS).as_bytes(), policy=policy.default)
    assert read["Bcc"] is None and read["Message-ID"] is not None and read["X-Clinic-Kind"] == "CONFIRMATION"
    assert read["Subject"].endswith(
        "with Dr = ?utf-8?q?Who=0D=0ABcc=3A_evil=40attacker=2Eexample=0D=0A=0D=0AYour_appointment_was_cancelled=2E?="
    )
    text = read.get_body(("plain",))
    assert text is not None and "Your appointment was cancelled" not in text.get_content()


@pytest.mark.parametrize(
    "name",
    ["Bob:mailto:attacker@evil.example", "Who: Dr; X", "Doe, John", 'Say "hi" ^_^', "Mallory\rLOCATION:Pay first"],
)
def test_a_calendar_reader_sees_the_attendee_as_named(name: str) -> None:
    calendar = icalendar.Calendar.from_ical(mail.ics(notice(patient_name=name), SETTINGS.mail_from))
    [event] = calendar.walk("VEVENT")
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:pat@example.com"
    assert attendee.params["CN"] == one_line(name)
    assert "LOCATION" not in event
    assert str(event["ORGANIZER"]) == "mailto:no-reply@clinic.example" and event["ORGANIZER"].params["CN"] == "Clinic"


def test_a_relay_without_smtputf8_refuses_a_non_ascii_address_for_good() -> None:
    import smtplib

    refused = mail._classify(smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server"))
    assert isinstance(refused, mail.MailRejected)


@pytest.mark.parametrize("doctor", ["Dr. Zoë Ünal", "Dr. " + "Ünal Zoë " * 20 + "Ende"])
def test_a_subject_with_non_ascii_words_reads_back_as_written(doctor: str) -> None:
    written = mail.compose(notice(doctor_name=doctor), SETTINGS).as_bytes()
    read = message_from_bytes(written, policy=policy.default)
    assert read["Subject"] == mail.subject(notice(doctor_name=doctor))
    assert all(len(line) <= 998 for line in written.split(b"\n"))


def test_a_reminder_has_no_calendar_entry() -> None:
    message = mail.compose(notice("REMINDER"), SETTINGS)
    assert "text/calendar" not in [p.get_content_type() for p in message.walk()]
    with pytest.raises(ValueError):
        mail.ics(notice("REMINDER"), SETTINGS.mail_from)


def test_ics_request_and_cancel() -> None:
    stamp = datetime(2024, 12, 1, 12, 0, tzinfo=UTC)
    request = mail.ics(notice(), SETTINGS.mail_from, stamp)
    lines = request.split("\r\n")
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "" and lines[-2] == "END:VCALENDAR"
    assert "METHOD:REQUEST" in lines and "STATUS:CONFIRMED" in lines
    assert f"UID:{APPOINTMENT}@clinic" in lines and "SEQUENCE:0" in lines
    assert "DTSTART:20241203T080000Z" in lines and "DTEND:20241203T083000Z" in lines
    assert "DTSTAMP:20241201T120000Z" in lines
    assert "SUMMARY:Appointment with Dr. Anna Weiß" in lines
    unfolded = request.replace("\r\n ", "")
    assert 'ATTENDEE;CN="Zoë O\'Brien, Jr.";ROLE=REQ-PARTICIPANT;RSVP=FALSE:mailto:pat@example.com' in unfolded
    assert all(len(line.encode()) <= 75 for line in lines)
    cancel = mail.ics(notice("CANCELLATION", sequence=2), SETTINGS.mail_from, stamp)
    assert "METHOD:CANCEL" in cancel and "STATUS:CANCELLED" in cancel and "SEQUENCE:2" in cancel
    assert f"UID:{APPOINTMENT}@clinic" in cancel
    moved = mail.ics(notice("RESCHEDULED", sequence=1), SETTINGS.mail_from, stamp)
    assert "METHOD:REQUEST" in moved and "SEQUENCE:1" in moved


def test_ics_escapes_and_folds_long_text() -> None:
    long_name = "Dr. " + "Ä" * 60 + "; a, b\\c"
    text = mail.ics(notice(doctor_name=long_name), SETTINGS.mail_from)
    lines = text.split("\r\n")
    assert all(len(line.encode()) <= 75 for line in lines)
    assert "SUMMARY:Appointment with Dr. " + "Ä" * 60 + "\\; a\\, b\\\\c" in text.replace("\r\n ", "")


def test_task_names_are_deterministic() -> None:
    first = outbox.task_name(APPOINTMENT, "CONFIRMATION", START, 41)
    assert first == outbox.task_name(APPOINTMENT, "CONFIRMATION", START, 41)
    assert first == f"{APPOINTMENT}-confirmation-1733212800-41"
    assert first != outbox.task_name(APPOINTMENT, "CONFIRMATION", START, 42)
    slot, other_slot = "6b1f5c2e-0000-4000-8000-000000000001", "6b1f5c2e-0000-4000-8000-000000000002"
    reminder = outbox.reminder_name(APPOINTMENT, slot, 86400)
    assert reminder == outbox.reminder_name(APPOINTMENT, slot, 86400) == f"{APPOINTMENT}-reminder-{slot}-86400"
    # Another slot (of another doctor, say) at the very same time is another reminder.
    assert reminder != outbox.reminder_name(APPOINTMENT, other_slot, 86400)
    assert reminder != outbox.reminder_name(APPOINTMENT, slot, 7200)
    for name in (first, reminder):
        assert len(name) <= 500 and all(c.isalnum() or c in "-_" for c in name)


def test_task_request_carries_name_eta_deadline_and_oidc() -> None:
    row = {"name": "abc-reminder-1-2", "deliver_at": START, "payload": {"kind": "REMINDER"}}
    settings = Settings(
        tasks_queue="projects/p/locations/l/queues/q",
        notify_url="https://n.example/tasks/notify",
        tasks_dispatch_deadline_s=60,
    )
    request = dispatch.task_request(settings, row)
    assert request["name"] == "projects/p/locations/l/queues/q/tasks/abc-reminder-1-2"
    assert request["schedule_time"] == START and request["dispatch_deadline"] == timedelta(seconds=60)
    assert request["http_request"]["url"] == "https://n.example/tasks/notify"
    assert request["http_request"]["body"] == b'{"kind": "REMINDER"}'
    assert "oidc_token" not in request["http_request"]
    signed = dispatch.task_request(
        settings.model_copy(
            update={"tasks_service_account": "tasks@p.iam.gserviceaccount.com", "oidc_audience": "https://n.example"}
        ),
        row,
    )
    assert signed["http_request"]["oidc_token"] == {
        "service_account_email": "tasks@p.iam.gserviceaccount.com",
        "audience": "https://n.example",
    }


def payload(**changes: Any) -> dict[str, Any]:
    return {
        "message_key": f"{APPOINTMENT}-confirmation-1733212800-42",
        "appointment_id": str(APPOINTMENT),
        "kind": "CONFIRMATION",
        "slot_id": str(SLOT),
        "start_time": START.isoformat(),
        **changes,
    }


def test_the_payload_model() -> None:
    message = TaskMessage.model_validate(payload())
    assert message.audit_id == 42 and message.start_time == START
    assert TaskMessage.model_validate(payload(kind="REMINDER")).audit_id is None
    assert TaskMessage.model_validate(payload(message_key="x-y")).audit_id is None
    for bad in (
        payload(kind="SMS"),
        payload(start_time="2024-12-03T08:00:00"),
        payload(message_key=""),
        payload(message_key="a b"),
        payload(slot_id="1"),
        payload(extra=True),
    ):
        with pytest.raises(ValidationError):
            TaskMessage.model_validate(bad)


def row(**changes: Any) -> dict[str, Any]:
    return {"slot_id": SLOT, "start_time": START, "status": "BOOKED", "started": False, **changes}


@pytest.mark.parametrize(
    ("kind", "stored", "sent"),
    [
        ("CONFIRMATION", row(), True),
        ("CONFIRMATION", row(slot_id=uuid.uuid4()), False),
        ("CONFIRMATION", row(status="CANCELLED"), False),
        ("CONFIRMATION", row(started=True), False),
        ("REMINDER", row(), True),
        ("REMINDER", row(start_time=START + timedelta(hours=1)), False),
        ("REMINDER", row(status="CANCELLED"), False),
        ("REMINDER", row(status="COMPLETED"), False),
        ("REMINDER", row(started=True), False),
        ("RESCHEDULED", row(), True),
        ("RESCHEDULED", row(slot_id=uuid.uuid4()), False),
        ("RESCHEDULED", row(started=True), False),
        ("CANCELLATION", row(status="CANCELLED"), True),
        ("CANCELLATION", row(status="CANCELLED", started=True), True),
        ("CANCELLATION", row(), False),
        ("REMINDER", None, False),
    ],
)
def test_a_message_is_sent_only_while_true(kind: str, stored: dict[str, Any] | None, sent: bool) -> None:
    message = TaskMessage.model_validate(payload(kind=kind))
    assert (stale_reason(message, stored) is None) is sent


def test_retry_count_header() -> None:
    assert [retry_count(v) for v in (None, "", "0", "3", "-1", "x")] == [0, 0, 0, 3, 0, 0]


def test_an_outage_stops_a_batch_but_a_refused_task_does_not() -> None:
    from google.api_core import exceptions

    assert dispatch._unreachable(exceptions.ServiceUnavailable("down"))
    assert dispatch._unreachable(exceptions.DeadlineExceeded("slow"))
    assert dispatch._unreachable(ConnectionRefusedError())
    assert not dispatch._unreachable(exceptions.InvalidArgument("schedule_time too far"))
    assert not dispatch._unreachable(exceptions.FailedPrecondition("no such queue"))


def test_every_email_links_to_the_appointment_in_the_app_when_the_apps_address_is_set() -> None:
    settings = Settings(mail_from="Clinic <no-reply@clinic.example>", public_url="https://clinic.example/")
    link = f"https://clinic.example/#/appointments/{APPOINTMENT}"
    for kind in ("CONFIRMATION", "REMINDER", "CANCELLATION", "RESCHEDULED"):
        message = mail.compose(notice(kind), settings)
        assert f"Manage this appointment: {link}" in message.get_body(("plain",)).get_content()
        assert f'<a href="{link}">Manage this appointment</a>' in message.get_body(("html",)).get_content()
    # Without the address there is nowhere to link to.
    assert "Manage this appointment" not in mail.compose(notice(), SETTINGS).get_body(("plain",)).get_content()
