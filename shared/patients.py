"""Patient profiles: a patient registers their own; an admin registers anyone."""

from __future__ import annotations

from shared.auth import Caller, require_role
from shared.db import Tx, queries
from shared.errors import Conflict, Forbidden, Unprocessable
from shared.models import Patient, PatientCreate
from shared.users import ensure_user

SQL = queries("users")


def register(tx: Tx, caller: Caller, body: PatientCreate) -> tuple[Patient, bool]:
    """Creates or updates the profile; returns it and whether it was created. Fields
    the request leaves out keep their values."""
    require_role(caller, "patient", "admin")
    ensure_user(tx, caller)
    if body.user_id is None or body.user_id == caller.id:
        if caller.is_admin():
            raise Unprocessable("an admin registers a patient: give 'user_id', 'email' and 'name'")
        if body.email is not None or body.name is not None:
            raise Unprocessable("a patient's email and name come from their sign-in: leave them out")
        user_id = caller.id
    else:
        if not caller.is_admin():
            # As for bookings: acting for another user is not allowed, not merely invalid.
            raise Forbidden("a patient registers only themself: leave out 'user_id'")
        if body.email is None or body.name is None:
            raise Unprocessable("give 'email' and 'name' for the new patient")
        existing = tx.first(SQL.select_user, id=body.user_id)
        if existing is None:
            new = tx.first(SQL.insert_user, id=body.user_id, email=body.email.lower(), name=body.name, role="patient")
            if new is None:
                raise Conflict("a user with this email already exists")
        elif existing["role"] != "patient":
            raise Conflict("this user is not a patient")
        elif existing["email"] != body.email.lower():
            raise Conflict("this user exists with another email")
        elif existing["name"] != body.name:
            # As for the email: another name more likely means the wrong user_id than a
            # correction, and silently keeping the stored one would hide either.
            raise Conflict("this user exists with another name")
        user_id = body.user_id
    given = body.model_fields_set
    profile = tx.one(
        SQL.insert_patient_profile,
        user_id=user_id,
        phone=body.phone,
        date_of_birth=body.date_of_birth,
        set_phone="phone" in given,
        set_date_of_birth="date_of_birth" in given,
    )
    patient = tx.one(SQL.select_patient, user_id=user_id)
    return Patient(**patient), bool(profile["created"])
