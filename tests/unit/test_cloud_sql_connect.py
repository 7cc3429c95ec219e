"""shared/db/connection.py: a Cloud SQL connect that hangs is a 503 after DB_CONNECT_TIMEOUT.

Cloud SQL cannot run here, so a thin stand-in for the connector hangs the way a
blackholed address does (its own TCP connect and TLS handshake take no timeout)."""

from __future__ import annotations

import threading
import time
from typing import Any

import google.cloud.sql.connector as connector_module
import pytest

from shared.db import connection as db
from shared.errors import DatabaseUnavailable
from shared.settings import Settings


class HungConnection:
    closed = False

    def close(self) -> None:
        HungConnection.closed = True


def test_a_hung_connect_is_a_503_in_time_and_its_late_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = threading.Event()

    class Connector:
        def __init__(self, **_: Any) -> None:
            pass

        def connect(self, *_: Any, **__: Any) -> HungConnection:
            answer.wait(timeout=30)
            return HungConnection()

    monkeypatch.setattr(connector_module, "Connector", Connector)
    monkeypatch.setattr(db, "_connector", None)
    monkeypatch.setattr(db, "_connects", None)
    settings = Settings(instance_connection_name="p:r:i", db_user="fn@p.iam", db_connect_timeout=0.3, database_url=None)
    with pytest.raises(DatabaseUnavailable, match=r"did not answer within 0\.3 s"):
        db.connect(settings)  # while the connect still hangs: it waits for `answer`
    assert not answer.is_set()
    answer.set()  # the connection arrives after all
    deadline = time.monotonic() + 5
    while not HungConnection.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert HungConnection.closed
