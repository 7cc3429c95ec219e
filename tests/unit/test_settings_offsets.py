"""shared/settings.py parse_offsets: REMINDER_OFFSETS such as `24h,2h` or `90s`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.settings import parse_offsets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", (timedelta(hours=24),)),
        ("24h,2h", (timedelta(hours=24), timedelta(hours=2))),
        ("2h,24h", (timedelta(hours=24), timedelta(hours=2))),  # latest first, whatever the order given
        ("90s", (timedelta(seconds=90),)),
        (" 30m , 2d ", (timedelta(days=2), timedelta(minutes=30))),
        ("24H", (timedelta(hours=24),)),
        ("24h,24h,1440m", (timedelta(hours=24),)),  # duplicates collapse
        ("24h,,2h,", (timedelta(hours=24), timedelta(hours=2))),  # empty parts are skipped
        ("", ()),
        ("0s", (timedelta(0),)),
    ],
)
def test_offsets(text: str, expected: tuple[timedelta, ...]) -> None:
    assert parse_offsets(text) == expected


@pytest.mark.parametrize("text", ["24", "h", "24x", "-5m", "1.5h", "24 h", "2w", "24h;2h", "½h", "²h"])
def test_bad_offsets(text: str) -> None:
    with pytest.raises(ValueError, match="bad reminder offset"):
        parse_offsets(text)
