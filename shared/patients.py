"""Patient profiles: a patient registers their own, an admin anyone's; the front desk finds them."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from shared import paging
from shared.auth import Caller
from shared.errors import Conflict, NotFound, Unprocessable
from shared.models import Patient, PatientCreate, PatientList, PatientQuery
from shared.policy import Action, allows, authorise
from shared.repositories import Accounts, Patients


class Work(Protocol):
    """What these use cases need of a unit of work."""

    accounts: Accounts
    patients: Patients


def register(uow: Work, caller: Caller, command: PatientCreate) -> tuple[Patient, bool]:
    """Creates or updates the profile; returns it and whether it was created. Fields
    the request leaves out keep their values."""
    authorise(caller, Action.REGISTER_PATIENT)
    uow.accounts.ensure(caller)
    if command.user_id is None or command.user_id == caller.id:
        if not allows(caller, Action.HOLD_APPOINTMENTS):
            raise Unprocessable("to register a patient, give their 'user_id', 'email' and 'name'")
        if command.email is not None or command.name is not None:
            raise Unprocessable("a patient's email and name come from their sign-in: leave them out")
        user_id = caller.id
    else:
        # As for bookings: acting for another user is not allowed, not merely invalid.
        authorise(caller, Action.REGISTER_PATIENT, owners=[command.user_id])
        if command.email is None or command.name is None:
            raise Unprocessable("give 'email' and 'name' for the new patient")
        _check_or_create_user(uow, command.user_id, command.email.lower(), command.name)
        user_id = command.user_id
    created = uow.patients.save_profile(user_id, command.phone, command.date_of_birth, command.model_fields_set)
    patient = uow.patients.get(user_id)
    assert patient is not None
    return Patient(**patient), created


def _check_or_create_user(uow: Work, user_id: UUID, email: str, name: str) -> None:
    existing = uow.patients.get_user(user_id)
    if existing is None:
        if not uow.patients.create_user(user_id, email, name, "patient"):
            raise Conflict("a user with this email already exists")
    elif existing["role"] != "patient":
        raise Conflict("this user is not a patient")
    elif existing["email"] != email:
        raise Conflict("this user exists with another email")
    elif existing["name"] != name:
        # As for the email: another name more likely means the wrong user_id than a
        # correction, and silently keeping the stored one would hide either.
        raise Conflict("this user exists with another name")


def find(uow: Work, caller: Caller, query: PatientQuery) -> PatientList:
    """The front desk finds a patient by part of their name or email address."""
    authorise(caller, Action.FIND_PATIENTS)
    uow.accounts.check_reader(caller)
    after = paging.decode(query.page_token, {"name": str, "id": paging.uuid})
    pattern = None
    if query.q:
        escaped = query.q.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
        pattern = f"%{escaped}%"
    rows = uow.patients.find(pattern, (after["name"], after["id"]) if after else None, query.page_size + 1)
    items = [Patient(**row) for row in rows[: query.page_size]]
    token = None
    if len(rows) > query.page_size:
        token = paging.encode({"name": items[-1].name, "id": items[-1].id})
    return PatientList(items=items, next_page_token=token)


def get(uow: Work, caller: Caller, patient_id: UUID) -> Patient:
    """A patient: to an admin, to themself, and to a doctor they have an appointment with
    (whose schedule names them); to anyone else it does not exist (404)."""
    uow.accounts.check_reader(caller)
    visible = allows(caller, Action.SEE_PATIENT, owners=[patient_id]) or (
        allows(caller, Action.SEE_PATIENTS_BOOKED_WITH_THEM) and uow.patients.booked_with(caller.id, patient_id)
    )
    row = uow.patients.get(patient_id) if visible else None
    if row is None:
        raise NotFound("no such patient")
    return Patient(**row)
