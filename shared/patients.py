"""Patient profiles: a patient registers their own; an admin registers anyone."""

from __future__ import annotations

from uuid import UUID

from shared import paging
from shared.auth import Caller, require_role
from shared.db.sqlfiles import queries
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.models import Patient, PatientCreate, PatientList, PatientQuery
from shared.unit_of_work import UnitOfWork
from shared.users import check_reader, ensure_user

SQL = queries("users")


def register(uow: UnitOfWork, caller: Caller, body: PatientCreate) -> tuple[Patient, bool]:
    """Creates or updates the profile; returns it and whether it was created. Fields
    the request leaves out keep their values."""
    tx = uow.tx
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


def find(uow: UnitOfWork, caller: Caller, query: PatientQuery) -> PatientList:
    """The front desk finds a patient by part of their name or email address."""
    tx = uow.tx
    require_role(caller, "admin")
    check_reader(tx, caller)
    after = paging.decode(query.page_token, {"name": str, "id": paging.uuid})
    pattern = None
    if query.q:
        escaped = query.q.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
        pattern = f"%{escaped}%"
    rows = tx.all(
        SQL.find_patients,
        pattern=pattern,
        after_name=after["name"] if after else None,
        after_id=after["id"] if after else None,
        limit=query.page_size + 1,
    )
    items = [Patient(**row) for row in rows[: query.page_size]]
    token = None
    if len(rows) > query.page_size:
        token = paging.encode({"name": items[-1].name, "id": items[-1].id})
    return PatientList(items=items, next_page_token=token)


def get(uow: UnitOfWork, caller: Caller, patient_id: UUID) -> Patient:
    """A patient: to an admin, to themself, and to a doctor they have an appointment with
    (whose schedule names them); to anyone else it does not exist (404)."""
    tx = uow.tx
    check_reader(tx, caller)
    visible = (
        caller.is_admin()
        or (caller.role == "patient" and caller.id == patient_id)
        or (
            caller.role == "doctor"
            and tx.one(SQL.doctor_sees_patient, doctor_id=caller.id, patient_id=patient_id)["sees"]
        )
    )
    row = tx.first(SQL.select_patient, user_id=patient_id) if visible else None
    if row is None:
        raise NotFound("no such patient")
    return Patient(**row)
