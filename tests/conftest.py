"""One test PostgreSQL per session, shared by the integration and e2e suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import TestServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TestServer]:
    server = TestServer()
    server.build_template()
    yield server
    if server.embedded is not None:
        server.embedded.stop()
