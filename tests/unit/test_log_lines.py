"""What the outbox sweep logs, with no database: the fields the outbox-age alert reads."""

from __future__ import annotations

from shared import dispatch
from tests.log_lines import captured


def test_the_sweep_logs_the_age_of_the_oldest_due_row_and_the_counts() -> None:
    pending = {"tasks": 4, "events": 1, "due": 2, "oldest_due_age_s": 312}
    with captured("clinic.dispatch") as lines:
        result = dispatch.report_sweep(dispatch.Counts(tasks=3, events=2, failed=1), pending)
    assert result == {
        "tasks": 3,
        "events": 2,
        "failed": 1,
        "pending_tasks": 4,
        "pending_events": 1,
        "due": 2,
        "oldest_due_age_s": 312,
    }
    [line] = lines
    assert line["message"] == "outbox swept" and line["logger"] == "clinic.dispatch" and line["severity"] == "INFO"
    # Numbers, not strings: a log-based metric's value extractor reads them as such.
    assert line["oldest_due_age_s"] == 312 and line["due"] == 2 and line["pending_tasks"] == 4
