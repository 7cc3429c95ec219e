"""One JSON object per line in Cloud Logging's structured format; ids only, no personal data."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import threading
from typing import Any

_local = threading.local()
_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def set_trace(header: str | None) -> None:
    """Remember the request's trace id (X-Cloud-Trace-Context or traceparent)."""
    trace = None
    if header:
        trace = header.split("/")[0] if "/" in header else header.split("-")[1] if header.count("-") >= 3 else None
    _local.trace = trace


def trace_id() -> str | None:
    """The request's trace id when it is a well-formed one (32 hex digits, not all zero):
    what is carried on to the messages the request causes (outbox rows, tasks, events)."""
    trace = getattr(_local, "trace", None)
    if isinstance(trace, str) and _TRACE_ID.fullmatch(trace) and trace.strip("0"):
        return trace
    return None


def trace_headers(trace: str) -> dict[str, str]:
    """The headers that carry a trace into a request we cause (a Cloud Tasks task): W3C's
    traceparent and Google's X-Cloud-Trace-Context; Cloud Run honours both and keeps the
    trace id. The span id is new (a child of no span we know), and sampled."""
    span = secrets.token_hex(8)
    return {
        "traceparent": f"00-{trace}-{span}-01",
        "X-Cloud-Trace-Context": f"{trace}/{int(span, 16)};o=1",
    }


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        trace = getattr(_local, "trace", None)
        project = os.environ.get("GOOGLE_CLOUD_PROJECT")
        if trace:
            entry["logging.googleapis.com/trace"] = f"projects/{project}/traces/{trace}" if project else trace
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(again: bool = False) -> None:
    """Our JSON lines on stdout for every logger; `again` takes logging back after someone
    else configured it (functions-framework does, in ASGI mode with LOG_EXECUTION_ID, after
    our modules were imported: shared/asgi.py)."""
    root = logging.getLogger()
    if not again and any(isinstance(h.formatter, _JsonFormatter) for h in root.handlers):
        return
    # Again, the process' own stdout: functions-framework may have swapped sys.stdout for
    # a wrapper of its own for the request under way.
    handler = logging.StreamHandler(sys.__stdout__ if again and sys.__stdout__ else sys.stdout)
    handler.setFormatter(_JsonFormatter())
    root.handlers = [handler]
    root.setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    # logging.config.dictConfig disables every logger that existed before it ran (ours,
    # asyncio's, which reports event-loop errors, and the rest).
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            logger.disabled = False


def get(name: str) -> logging.Logger:
    setup()
    return logging.getLogger(name)
