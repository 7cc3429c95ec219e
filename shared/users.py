"""Users come from the identity provider; a row is created on first authenticated use."""

from __future__ import annotations

from shared.auth import Caller
from shared.db import Tx, queries
from shared.errors import Conflict

SQL = queries("users")


def ensure_user(tx: Tx, caller: Caller) -> None:
    created = tx.first(SQL.upsert_user, id=caller.id, email=caller.email, name=caller.name, role=caller.role)
    if created is None and tx.first(SQL.select_user, id=caller.id) is None:
        raise Conflict("this email belongs to another account")
