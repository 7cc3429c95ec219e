"""Users come from the identity provider; a row is created on first authenticated use."""

from __future__ import annotations

from shared.auth import Caller
from shared.db.sqlfiles import queries
from shared.errors import Conflict, Forbidden
from shared.unit_of_work import Row, Transaction

SQL = queries("users")


def ensure_user(tx: Transaction, caller: Caller) -> None:
    created = tx.first(SQL.upsert_user, id=caller.id, email=caller.email, name=caller.name, role=caller.role)
    if created is None:
        check_account(tx, caller)


def check_account(tx: Transaction, caller: Caller) -> None:
    """The caller's users row exists, and says what the token says the caller is."""
    _check_stored_role(caller, tx.first(SQL.select_user, id=caller.id))


def check_reader(tx: Transaction, caller: Caller) -> None:
    """Reads create no user; an account that exists must have the token's role, or an
    admin claim on a patient's account would read every appointment."""
    stored = tx.first(SQL.select_user, id=caller.id)
    if stored is not None:
        _check_stored_role(caller, stored)


def _check_stored_role(caller: Caller, stored: Row | None) -> None:
    """The users row, not the token, says what an account is: a token that claims
    another role (or none, which reads as patient) acts as nobody."""
    if stored is None:
        raise Conflict("this email belongs to another account")
    if stored["role"] != caller.role:
        raise Forbidden(f"this account is {_a(stored['role'])} account; the token says {caller.role}")


def _a(role: str) -> str:
    """The role with its article: "a doctor", "an admin"."""
    return f"an {role}" if role[:1] in "aeiou" else f"a {role}"
