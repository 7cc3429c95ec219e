"""Text that must stay on one line: names in email headers and calendar lines."""

from __future__ import annotations

import re

# Every control character (C0, DEL, C1: tab and line breaks too) and Unicode's own line
# and paragraph separators, as a regular-expression character class's contents.
LINE_BREAKING = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
_LINE_BREAKING = re.compile(f"[{LINE_BREAKING}]+")


def one_line(text: str) -> str:
    """The text with every run of control characters and line breaks made one space."""
    return _LINE_BREAKING.sub(" ", text)
