"""The waitlist's rules without a database: who may do what, what a request may ask,
how a range of the doctor's days becomes instants (DST included), and the offer email."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time

import pytest
from pydantic import ValidationError

from shared import policy, waitlist
from shared.auth import Caller
from shared.errors import Forbidden, NotFound
from shared.models import WaitlistCreate
from shared.policy import Action


def caller(role: str) -> Caller:
    return Caller(uuid.uuid4(), f"{role}@example.com", role.title(), role)  # type: ignore[arg-type]


def entry_of(patient: Caller, doctor: Caller) -> dict[str, object]:
    return {"id": uuid.uuid4(), "patient_id": patient.id, "doctor_id": doctor.id}


ACTIONS = (Action.JOIN_WAITLIST, Action.SEE_WAITLIST_ENTRY, Action.LEAVE_WAITLIST, Action.ANSWER_OFFER)


def test_a_patient_acts_on_their_own_entries_and_anothers_is_not_found() -> None:
    patient, other, doctor = caller("patient"), caller("patient"), caller("doctor")
    for action in ACTIONS:
        policy.authorise(patient, action)
        assert not policy.covers_anyone(patient, action)
    waitlist.authorise_entry(patient, Action.ANSWER_OFFER, entry_of(patient, doctor))
    with pytest.raises(NotFound):
        waitlist.authorise_entry(other, Action.ANSWER_OFFER, entry_of(patient, doctor))
    with pytest.raises(NotFound):
        waitlist.authorise_entry(other, Action.LEAVE_WAITLIST, entry_of(patient, doctor))


def test_a_doctor_reads_their_own_doctors_entries_only_and_changes_none() -> None:
    patient, doctor, colleague = caller("patient"), caller("doctor"), caller("doctor")
    policy.authorise(doctor, Action.SEE_WAITLIST_ENTRY)
    waitlist.authorise_entry(doctor, Action.SEE_WAITLIST_ENTRY, entry_of(patient, doctor))
    with pytest.raises(NotFound):
        waitlist.authorise_entry(colleague, Action.SEE_WAITLIST_ENTRY, entry_of(patient, doctor))
    for action in (Action.JOIN_WAITLIST, Action.LEAVE_WAITLIST, Action.ANSWER_OFFER):
        with pytest.raises(Forbidden):
            policy.authorise(doctor, action)


def test_the_front_desk_may_do_everything_for_anyone() -> None:
    admin, patient, doctor = caller("admin"), caller("patient"), caller("doctor")
    for action in ACTIONS:
        assert policy.covers_anyone(admin, action)
        waitlist.authorise_entry(admin, action, entry_of(patient, doctor))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"from": "2030-01-05", "to": "2030-01-01"}, "'to' must not be before 'from'"),
        ({"start": "09:00"}, "give both 'start' and 'end'"),
        ({"start": "12:00", "end": "09:00"}, "'end' must be after 'start'"),
        ({"start": "09:00:30", "end": "10:00"}, "whole minutes"),
        ({"from": "5 May"}, "YYYY-MM-DD"),
        ({"nickname": "x"}, "Extra inputs"),
    ],
)
def test_a_request_that_cannot_be_meant_is_refused(body: dict[str, str], message: str) -> None:
    values = {"doctor_id": str(uuid.uuid4()), "from": "2030-01-01", "to": "2030-01-02", **body}
    with pytest.raises(ValidationError, match=message):
        WaitlistCreate.model_validate(values)


def test_24_00_ends_the_day() -> None:
    body = WaitlistCreate.model_validate(
        {"doctor_id": str(uuid.uuid4()), "from": "2030-01-01", "to": "2030-01-01", "start": "18:00", "end": "24:00"}
    )
    assert body.end == time(0)
    assert waitlist._day_end(body.end) == time(23, 59, 59, 999999)


def test_the_range_is_the_doctors_days_across_a_change_of_the_clocks() -> None:
    """New York springs forward on 2027-03-14: that day is 23 hours long."""
    body = WaitlistCreate.model_validate({"doctor_id": str(uuid.uuid4()), "from": "2027-03-14", "to": "2027-03-14"})
    start, end = waitlist._range(body, "America/New_York")
    assert start == datetime(2027, 3, 14, 5, tzinfo=UTC)
    assert end == datetime(2027, 3, 15, 4, tzinfo=UTC)
    assert (end - start).total_seconds() == 23 * 3600


def test_an_entry_whose_range_is_past_reads_as_ended() -> None:
    row = {
        "id": uuid.uuid4(),
        "patient_id": uuid.uuid4(),
        "doctor_id": uuid.uuid4(),
        "range_start": datetime(2020, 1, 1, tzinfo=UTC),
        "range_end": datetime(2020, 1, 2, tzinfo=UTC),
        "day_start": None,
        "day_end": None,
        "status": "WAITING",
        "created_at": datetime(2019, 12, 1, tzinfo=UTC),
        "past": True,
    }
    assert waitlist._entry(row).status == "ENDED"
    assert waitlist._entry({**row, "status": "BOOKED"}).status == "BOOKED"


def test_the_offer_email_says_when_how_long_it_is_held_and_where_to_accept() -> None:
    offer_id = uuid.uuid4()
    task = waitlist.WaitlistTask(message_key=f"offer-{offer_id}-email", offer_id=offer_id, kind="WAITLIST_OFFER")
    row = {
        "email": "ada@example.com",
        "name": "Ada",
        "doctor_name": "Dr. Okafor",
        "timezone": "Europe/Berlin",
        "start_time": datetime(2030, 6, 3, 8, 0, tzinfo=UTC),
        "end_time": datetime(2030, 6, 3, 8, 30, tzinfo=UTC),
        "expires_at": datetime(2030, 6, 1, 12, 15, tzinfo=UTC),
    }
    message = waitlist.offer_message(row, task, "Clinic <clinic@example.com>", "https://clinic.example")
    text = message.get_content()
    assert message["X-Clinic-Offer"] == str(offer_id) and message["X-Clinic-Kind"] == "WAITLIST_OFFER"
    assert "Monday, 3 June 2030, 10:00-10:30" in text and "until 14:15 (Europe/Berlin)" in text
    assert "https://clinic.example/#/appointments" in text
    assert date(2030, 6, 3).isoformat() not in message["Subject"]
