"""The README's configuration table names every setting the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_configuration_table_names_every_setting() -> None:
    text = README.read_text()
    table = text[text.index("## Configuration") :]
    table = table[: table.index("\n## ", 1)]
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    settings = {name.upper() for name in Settings.model_fields}
    assert settings <= named, f"not in the README's table: {sorted(settings - named)}"
