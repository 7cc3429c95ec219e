"""Users come from the identity provider; a row is created on first authenticated use."""

from __future__ import annotations

from shared.auth import Caller
from shared.db import Row, Tx, queries
from shared.errors import Conflict, Forbidden

SQL = queries("users")


def ensure_user(tx: Tx, caller: Caller) -> None:
    created = tx.first(SQL.upsert_user, id=caller.id, email=caller.email, name=caller.name, role=caller.role)
    if created is None:
        check_stored_role(caller, tx.first(SQL.select_user, id=caller.id))


def check_stored_role(caller: Caller, stored: Row | None) -> None:
    """The users row, not the token, says what an account is: a token that claims
    another role (or none, which reads as patient) acts as nobody."""
    if stored is None:
        raise Conflict("this email belongs to another account")
    if stored["role"] != caller.role:
        raise Forbidden(f"this account is a {stored['role']} account; the token says {caller.role}")
