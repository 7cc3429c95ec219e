"""Users come from the identity provider; a row is created on first authenticated use."""

from __future__ import annotations

from shared.auth import Caller
from shared.db import IntegrityViolation, Tx, queries
from shared.errors import Conflict

SQL = queries("users")


def ensure_user(tx: Tx, caller: Caller) -> None:
    try:
        with tx.savepoint():
            tx.execute(SQL.upsert_user, id=caller.id, email=caller.email, name=caller.name, role=caller.role)
    except IntegrityViolation as error:
        if error.constraint == "users_email_key":
            raise Conflict("this email belongs to another account") from error
        raise
