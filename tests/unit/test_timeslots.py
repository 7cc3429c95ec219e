"""shared/timeslots.py: windows cut into slots of real elapsed time, DST gaps and overlaps."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.errors import Unprocessable
from shared.timeslots import cut_window, local_to_utc

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def starts(slots: list[tuple[datetime, datetime]]) -> list[datetime]:
    return [start for start, _ in slots]


def assert_contiguous(slots: list[tuple[datetime, datetime]], minutes: int) -> None:
    for (_, end), (next_start, _) in itertools.pairwise(slots):
        assert end == next_start
    for start, end in slots:
        assert end - start == timedelta(minutes=minutes)
        assert start.tzinfo is not None and start.utcoffset() == timedelta(0)


def test_an_ordinary_day_in_new_york() -> None:
    slots = cut_window(date(2027, 6, 1), time(9), time(12), 30, NEW_YORK)
    assert len(slots) == 6
    assert slots[0] == (utc(2027, 6, 1, 13), utc(2027, 6, 1, 13, 30))  # EDT = UTC-4
    assert_contiguous(slots, 30)


def test_a_remainder_shorter_than_a_slot_is_dropped() -> None:
    slots = cut_window(date(2027, 6, 1), time(9), time(10, 45), 30, BERLIN)
    assert starts(slots) == [utc(2027, 6, 1, 7), utc(2027, 6, 1, 7, 30), utc(2027, 6, 1, 8)]


def test_new_york_spring_forward_holds_two_hours() -> None:
    # 2027-03-14: 02:00 EST jumps to 03:00 EDT; 01:00-04:00 local is two real hours.
    slots = cut_window(date(2027, 3, 14), time(1), time(4), 60, NEW_YORK)
    assert slots == [(utc(2027, 3, 14, 6), utc(2027, 3, 14, 7)), (utc(2027, 3, 14, 7), utc(2027, 3, 14, 8))]


def test_new_york_fall_back_holds_four_hours() -> None:
    # 2027-11-07: 02:00 EDT falls back to 01:00 EST; 00:00-03:00 local is four real hours.
    slots = cut_window(date(2027, 11, 7), time(0), time(3), 60, NEW_YORK)
    assert starts(slots) == [utc(2027, 11, 7, h) for h in (4, 5, 6, 7)]
    assert_contiguous(slots, 60)


def test_berlin_spring_forward_and_fall_back() -> None:
    spring = cut_window(date(2027, 3, 28), time(1), time(4), 60, BERLIN)
    assert starts(spring) == [utc(2027, 3, 28, 0), utc(2027, 3, 28, 1)]
    fall = cut_window(date(2027, 10, 31), time(1), time(4), 60, BERLIN)
    assert starts(fall) == [utc(2027, 10, 30, 23), utc(2027, 10, 31, 0), utc(2027, 10, 31, 1), utc(2027, 10, 31, 2)]
    assert_contiguous(fall, 60)


def test_a_half_hour_dst_shift() -> None:
    # Lord Howe Island moves its clocks by 30 minutes: 02:00 -> 02:30 on 2027-10-03.
    zone = ZoneInfo("Australia/Lord_Howe")
    slots = cut_window(date(2027, 10, 3), time(1), time(4), 30, zone)
    assert len(slots) == 5
    assert_contiguous(slots, 30)


@pytest.mark.parametrize(
    ("zone", "day", "clock"),
    [
        (NEW_YORK, date(2027, 3, 14), time(2, 0)),
        (NEW_YORK, date(2027, 3, 14), time(2, 30)),
        (NEW_YORK, date(2027, 3, 14), time(2, 59, 59)),
        (BERLIN, date(2027, 3, 28), time(2, 0)),
        (BERLIN, date(2027, 3, 28), time(2, 45)),
    ],
)
def test_a_nonexistent_local_time_is_refused(zone: ZoneInfo, day: date, clock: time) -> None:
    with pytest.raises(Unprocessable, match="does not exist"):
        local_to_utc(day, clock, zone)
    # ... whether the window starts or ends in the gap.
    with pytest.raises(Unprocessable, match="does not exist"):
        cut_window(day, clock, time(5), 15, zone)
    with pytest.raises(Unprocessable, match="does not exist"):
        cut_window(day, time(0), clock, 15, zone)


def test_the_edges_of_the_gap_exist() -> None:
    assert local_to_utc(date(2027, 3, 14), time(1, 59), NEW_YORK) == utc(2027, 3, 14, 6, 59)
    assert local_to_utc(date(2027, 3, 14), time(3, 0), NEW_YORK) == utc(2027, 3, 14, 7)


def test_an_ambiguous_local_time_takes_its_first_occurrence() -> None:
    # 01:30 happens twice in New York on 2027-11-07: first EDT (05:30 UTC), then EST (06:30 UTC).
    assert local_to_utc(date(2027, 11, 7), time(1, 30), NEW_YORK) == utc(2027, 11, 7, 5, 30)
    assert local_to_utc(date(2027, 10, 31), time(2, 30), BERLIN) == utc(2027, 10, 31, 0, 30)
    # A window ending at the ambiguous 02:00... is the first 02:00? No: 02:00 EST (07:00 UTC) is
    # the only 02:00 (EDT's 02:00 never happened), so 01:00-02:00 is two real hours.
    window = cut_window(date(2027, 11, 7), time(1), time(2), 30, NEW_YORK)
    assert starts(window) == [
        utc(2027, 11, 7, 5),
        utc(2027, 11, 7, 5, 30),
        utc(2027, 11, 7, 6),
        utc(2027, 11, 7, 6, 30),
    ]


def test_a_window_within_the_repeated_hour() -> None:
    # 01:00-01:30 both resolve to their first occurrence: a 30-minute window.
    assert cut_window(date(2027, 11, 7), time(1), time(1, 30), 30, NEW_YORK) == [
        (utc(2027, 11, 7, 5), utc(2027, 11, 7, 5, 30))
    ]


def test_an_end_at_midnight_is_the_midnight_that_ends_the_day() -> None:
    evening = cut_window(date(2027, 6, 1), time(18), time(0), 60, BERLIN)
    assert starts(evening) == [utc(2027, 6, 1, h) for h in range(16, 22)]
    assert evening[-1][1] == utc(2027, 6, 1, 22)  # 00:00 CEST on 2 June
    # 00:00-00:00 is the whole day, in real time: 25 hours on New York's fall-back day.
    whole = cut_window(date(2027, 11, 7), time(0), time(0), 60, NEW_YORK)
    assert len(whole) == 25 and whole[-1][1] == utc(2027, 11, 8, 5)
    assert_contiguous(whole, 60)


@pytest.mark.parametrize(
    ("zone", "eve", "jump"),
    [
        # Clocks go from 00:00 straight to 01:00: that midnight never shows on a clock,
        # but the day still ends (and the next begins) at the moment of the jump.
        ("America/Havana", date(2027, 3, 13), utc(2027, 3, 14, 5)),  # -05:00 to -04:00
        ("America/Santiago", date(2027, 9, 4), utc(2027, 9, 5, 4)),  # -04:00 to -03:00
    ],
)
def test_a_midnight_the_clock_skips_still_ends_and_begins_a_day(zone: str, eve: date, jump: datetime) -> None:
    tz = ZoneInfo(zone)
    evening = cut_window(eve, time(20), time(0), 60, tz)
    assert len(evening) == 4 and evening[-1][1] == jump
    assert_contiguous(evening, 60)
    # The next day's 00:00 is its beginning, the same instant: 00:00-03:00 is two hours.
    morning = cut_window(eve + timedelta(days=1), time(0), time(3), 60, tz)
    assert starts(morning) == [jump, jump + timedelta(hours=1)]
    # Any other time the clock skips is still refused, and so is the skipped 00:30.
    with pytest.raises(Unprocessable, match="does not exist"):
        cut_window(eve + timedelta(days=1), time(0, 30), time(3), 30, tz)


@pytest.mark.parametrize(
    ("start", "end", "minutes"),
    [
        (time(12), time(9), 30),  # ends before it starts (not read as the next morning)
        (time(22), time(2), 30),  # across midnight: two windows
        (time(9), time(9), 30),  # empty
        (time(9), time(9, 20), 30),  # shorter than one slot
    ],
)
def test_windows_without_a_slot_are_refused(start: time, end: time, minutes: int) -> None:
    with pytest.raises(Unprocessable):
        cut_window(date(2027, 6, 1), start, end, minutes, BERLIN)


def test_a_spring_forward_window_shorter_in_real_time_than_on_the_clock() -> None:
    # 01:30-03:30 New York on spring-forward day is one real hour: one 60-minute slot.
    assert len(cut_window(date(2027, 3, 14), time(1, 30), time(3, 30), 60, NEW_YORK)) == 1
