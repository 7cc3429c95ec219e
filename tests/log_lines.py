"""The JSON lines a logger writes, as Cloud Logging would receive them (its jsonPayload),
for tests of what the code logs: the log-based metrics in infra/terraform read these."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared import logs


@contextmanager
def captured(name: str) -> Iterator[list[dict[str, Any]]]:
    """Every line logger `name` writes inside the block, parsed; filled when it ends."""
    logs.setup()
    root_handler = logging.getLogger().handlers[0]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(root_handler.formatter)  # the JSON formatter shared/logs.py installs
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines() if line.strip())
