"""The date ranges of the two listing routes: where they start, end, and how long they may be."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from shared.models import AppointmentQuery, SlotQuery

DAY = date(2027, 3, 1)


def slots(days_after: int) -> SlotQuery:
    return SlotQuery.model_validate({"from": DAY.isoformat(), "to": (DAY + timedelta(days=days_after)).isoformat()})


def test_slot_ranges_hold_at_most_31_days_both_ends_included() -> None:
    assert slots(0).to == DAY  # one day
    assert slots(30).to == DAY + timedelta(days=30)  # 31 days
    with pytest.raises(ValidationError, match="at most 31 days"):
        slots(31)
    with pytest.raises(ValidationError, match="before 'from'"):
        slots(-1)


@pytest.mark.parametrize(
    ("start", "end", "valid"),
    [
        ("2027-03-02", "2027-03-01", False),  # the day before: over before it begins
        ("2027-03-03", "2027-03-01", False),
        ("2027-03-01", "2027-03-01", True),  # one whole day
        ("2027-03-01T12:00:00Z", "2027-03-01", True),  # the rest of that day
        ("2027-03-02T00:00:00Z", "2027-03-01", False),
        ("2027-03-01T12:00:00Z", "2027-03-01T12:00:00Z", True),
        ("2027-03-01T12:00:00Z", "2027-03-01T11:59:59Z", False),
    ],
)
def test_appointment_ranges_refuse_a_to_before_from(start: str, end: str, valid: bool) -> None:
    values = {"from": start, "to": end}
    if valid:
        AppointmentQuery.model_validate(values)
    else:
        with pytest.raises(ValidationError, match="before 'from'"):
            AppointmentQuery.model_validate(values)
