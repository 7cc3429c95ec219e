"""Shared by the integration and e2e suites: a test PostgreSQL and fresh databases."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", module="platformdirs")

from local.paths import ROOT  # noqa: E402
from local.postgres import EmbeddedPostgres, connect_native, url_with_database  # noqa: E402

# CLINIC_TEST_SLOT=N gives a test run its own state folder and ports, so several
# runs (or a developer's `make run`) can share one machine.
TEST_SLOT = int(os.environ.get("CLINIC_TEST_SLOT", "0"))
TEST_STATE = ROOT / ".local" / ("test" if TEST_SLOT == 0 else f"test-{TEST_SLOT}")
TEMPLATE = "clinic_template"


class TestServer:
    """A PostgreSQL for the tests: DATABASE_URL's server, or an embedded one of our own."""

    def __init__(self) -> None:
        self.embedded: EmbeddedPostgres | None = None
        external = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
        if external:
            self.admin_url = external
        else:
            self.embedded = EmbeddedPostgres(TEST_STATE / "pgdata", port=54339 + TEST_SLOT)
            self.embedded.start()
            self.admin_url = self.embedded.url

    def url(self, database: str) -> str:
        return url_with_database(self.admin_url, database)

    def build_template(self) -> None:
        """A fresh, fully migrated database that every test database is copied from."""
        from local.migrate import migrate
        from shared.settings import Settings

        self.drop(TEMPLATE)
        conn = connect_native(self.admin_url)
        try:
            conn.run(f'CREATE DATABASE "{TEMPLATE}"')
        finally:
            conn.close()
        migrate(Settings(database_url=self.url(TEMPLATE)))

    def create(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        conn = connect_native(self.admin_url)
        try:
            conn.run(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        finally:
            conn.close()
        return name

    def drop(self, name: str) -> None:
        conn = connect_native(self.admin_url)
        try:
            conn.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()


@contextmanager
def use_database(url: str) -> Iterator[None]:
    """Points this process's settings and pool at `url` for the block."""
    from shared.db import connection as db
    from shared.settings import get_settings

    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    db.reset_pool()
    try:
        yield
    finally:
        db.reset_pool()
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous
        get_settings.cache_clear()


def state_dir(name: str) -> Path:
    path = TEST_STATE / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def committed() -> Iterator[Any]:
    """A unit of work committed when the block ends normally (rolled back otherwise)."""
    from shared.unit_of_work import UnitOfWork

    with UnitOfWork() as uow:
        yield uow
        uow.commit()
