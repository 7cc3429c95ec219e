"""Integration tests: real PostgreSQL, a fresh migrated database for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pg8000.native
import pytest

from local.postgres import connect_native
from tests.helpers import TestServer, use_database


@pytest.fixture
def database_url(pg_server: TestServer) -> Iterator[str]:
    name = pg_server.create()
    url = pg_server.url(name)
    with use_database(url):
        yield url
    pg_server.drop(name)


@pytest.fixture
def sql(database_url: str) -> Iterator[pg8000.native.Connection]:
    """A raw autocommit connection to the test's database, to check what is stored."""
    conn = connect_native(database_url)
    yield conn
    conn.close()
