"""Request fields read one way only: blank reasons, whole-minute windows, written dates."""

from __future__ import annotations

from uuid import uuid4

import pytest
from pydantic import ValidationError

from shared.models import AppointmentChange, AppointmentCreate, AvailabilityWindow, SlotQuery


def test_a_blank_reason_is_no_reason() -> None:
    assert AppointmentCreate.model_validate({"slot_id": str(uuid4()), "reason": "   "}).reason is None
    assert AppointmentChange.model_validate({"status": "CANCELLED", "reason": ""}).reason is None
    assert AppointmentCreate.model_validate({"slot_id": str(uuid4()), "reason": " ill "}).reason == "ill"


@pytest.mark.parametrize("start", ["09:00:30", "09:00:00.5"])
def test_window_times_are_whole_minutes(start: str) -> None:
    with pytest.raises(ValidationError, match="whole minutes"):
        AvailabilityWindow.model_validate({"date": "2027-03-01", "start": start, "end": "10:00", "slot_minutes": 30})
    AvailabilityWindow.model_validate({"date": "2027-03-01", "start": "09:00:00", "end": "10:00", "slot_minutes": 30})


@pytest.mark.parametrize("written", ["20270301", "1798761600", "2027-03-01T00:00:00", "2027-03-01T00:00:00Z"])
def test_a_date_is_written_as_a_date(written: str) -> None:
    with pytest.raises(ValidationError, match="YYYY-MM-DD"):
        SlotQuery.model_validate({"from": written, "to": "2027-03-02"})
