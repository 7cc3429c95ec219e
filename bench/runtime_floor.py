"""A function that does nothing, for bench/booking's phase (r).

Served by functions-framework exactly as the book function is (same gunicorn
workers and threads) and sent the same requests, it measures what the runtime
alone (gunicorn's gthread worker, Flask, functions-framework) costs per request:
the part of (b) that no change to our code can remove.
"""

from typing import Any

import functions_framework


@functions_framework.http
def noop(request: Any) -> tuple[bytes, int, dict[str, str]]:
    request.get_data()
    return b"{}", 201, {"Content-Type": "application/json"}
