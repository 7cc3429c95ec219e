"""The named statements of shared/sql/*.sql (`-- name: verb_noun` blocks)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_SQL_DIR = Path(__file__).parent.parent / "sql"


class Queries:
    """The `-- name: verb_noun` blocks of one file in shared/sql/."""

    def __init__(self, path: Path) -> None:
        self._by_name: dict[str, str] = {}
        name: str | None = None
        lines: list[str] = []
        for line in [*path.read_text().splitlines(), "-- name: <end>"]:
            if line.startswith("-- name:"):
                if name is not None:
                    self._by_name[name] = "\n".join(lines).strip().rstrip(";")
                name, lines = line.removeprefix("-- name:").strip(), []
            else:
                lines.append(line)

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def __getattr__(self, name: str) -> str:
        try:
            return self._by_name[name]
        except KeyError:
            raise AttributeError(name) from None


@cache
def queries(concern: str) -> Queries:
    """The statements of shared/sql/<concern>.sql, read once per process."""
    return Queries(_SQL_DIR / f"{concern}.sql")
