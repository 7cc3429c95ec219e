"""Cutting an availability window into slots of real elapsed time in the doctor's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.errors import Unprocessable


def local_to_utc(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time; 422 if that time does not exist."""
    local = datetime.combine(day, clock, tzinfo=zone)
    instant = local.astimezone(UTC)
    # A time skipped by a spring-forward transition does not survive the round trip.
    if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise Unprocessable(f"{day} {clock} does not exist in {zone.key} (a daylight-saving gap)")
    return instant


def start_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant `day` begins in `zone`: its midnight, or where a spring-forward
    skips midnight (Havana, Santiago), the moment of the jump, when the day begins at
    01:00. Read with fold=0, a skipped 00:00 takes the offset from before the jump,
    which is exactly that moment."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def window_bounds(day: date, start: time, end: time, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The window's first and last instant in UTC. A start at 00:00 is the beginning of
    the day and an end at 00:00 the midnight that ends it, even where the clock skips
    that midnight; any other time the clock skips is 422."""
    first = start_of_day(day, zone) if start == time(0) else local_to_utc(day, start, zone)
    last = start_of_day(day + timedelta(days=1), zone) if end == time(0) else local_to_utc(day, end, zone)
    if last <= first:
        raise Unprocessable(
            "the window must end after it starts, on its own day (an end of 00:00 or 24:00 is"
            " midnight); publish a night across midnight as two windows"
        )
    return first, last


def cut_window(day: date, start: time, end: time, slot_minutes: int, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """[(start, end)] in UTC. Ambiguous fall-back times take their first occurrence.

    An end at 00:00 is the midnight that ends the day (an evening until midnight). A
    window never runs past it: an end before the start is refused rather than read as
    the next morning, which a swapped start and end would turn into a night of slots.
    """
    return cut_between(*window_bounds(day, start, end, zone), slot_minutes)


def cut_between(first: datetime, last: datetime, slot_minutes: int) -> list[tuple[datetime, datetime]]:
    """[(start, end)] of whole slots from `first`, ending at or before `last`."""
    step = timedelta(minutes=slot_minutes)
    slots = []
    cursor = first
    while cursor + step <= last:
        slots.append((cursor, cursor + step))
        cursor += step
    if not slots:
        raise Unprocessable("the window is shorter than one slot")
    return slots
