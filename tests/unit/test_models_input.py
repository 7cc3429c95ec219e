"""Request fields read one way only: blank reasons, whole-minute windows, written dates."""

from __future__ import annotations

from datetime import time
from uuid import uuid4

import pytest
from pydantic import ValidationError

from shared.models import AppointmentChange, AppointmentCreate, AppointmentQuery, AvailabilityWindow, SlotQuery


def test_a_blank_reason_is_no_reason() -> None:
    assert AppointmentCreate.model_validate({"slot_id": str(uuid4()), "reason": "   "}).reason is None
    assert AppointmentChange.model_validate({"status": "CANCELLED", "reason": ""}).reason is None
    assert AppointmentCreate.model_validate({"slot_id": str(uuid4()), "reason": " ill "}).reason == "ill"


@pytest.mark.parametrize("start", ["09:00:30", "09:00:00.5"])
def test_window_times_are_whole_minutes(start: str) -> None:
    with pytest.raises(ValidationError, match="whole minutes"):
        AvailabilityWindow.model_validate({"date": "2027-03-01", "start": start, "end": "10:00", "slot_minutes": 30})
    AvailabilityWindow.model_validate({"date": "2027-03-01", "start": "09:00:00", "end": "10:00", "slot_minutes": 30})


def test_a_window_may_end_at_24_00_the_midnight_that_ends_its_day() -> None:
    window = {"date": "2027-03-01", "start": "18:00", "slot_minutes": 30}
    assert AvailabilityWindow.model_validate({**window, "end": "24:00"}).end == time(0)
    assert AvailabilityWindow.model_validate({**window, "end": "24:00:00"}).end == time(0)
    assert AvailabilityWindow.model_validate({**window, "end": "24:00:00.000"}).end == time(0)
    for wrong in ("24:30", "25:00", "24:00:01", "24:00 "):
        with pytest.raises(ValidationError):
            AvailabilityWindow.model_validate({**window, "end": wrong})
    with pytest.raises(ValidationError):  # a window starts at 00:00, not at the end of its day
        AvailabilityWindow.model_validate({**window, "start": "24:00", "end": "24:00"})


@pytest.mark.parametrize("written", [82800, 0, "9", "9:00", "09:00+01:00", "09:00Z", "T09:00", " 09:00", "09h00"])
def test_a_window_time_is_written_hh_mm_without_offset(written: object) -> None:
    for field in ("start", "end"):
        body = {"date": "2027-03-01", "start": "08:00", "end": "10:00", "slot_minutes": 30, field: written}
        with pytest.raises(ValidationError, match="HH:MM, without offset"):
            AvailabilityWindow.model_validate(body)


@pytest.mark.parametrize("written", ["20270301", "1798761600", "2027-03-01T00:00:00", "2027-03-01T00:00:00Z"])
def test_a_date_is_written_as_a_date(written: str) -> None:
    with pytest.raises(ValidationError, match="YYYY-MM-DD"):
        SlotQuery.model_validate({"from": written, "to": "2027-03-02"})


def test_an_offset_whose_plus_became_a_space_says_how_to_write_it() -> None:
    # An unencoded "+" in a query string arrives as a space.
    with pytest.raises(ValidationError, match="write it %2B"):
        AppointmentQuery.model_validate({"from": "2027-03-01T10:00:00 05:00"})
    with pytest.raises(ValidationError) as other:
        AppointmentQuery.model_validate({"from": "2027-03-01 10:00"})
    assert "%2B" not in str(other.value)
    assert AppointmentQuery.model_validate({"from": "2027-03-01T10:00:00+05:00"}).from_ is not None
