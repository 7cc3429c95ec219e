"""The front desk finds patients: by part of a name or address, any case, LIKE's wildcards
taken literally, a page at a time; a doctor sees only their own patients."""

from __future__ import annotations

import uuid

import pytest

from shared import patients
from shared.auth import Caller
from shared.errors import Forbidden, NotFound
from shared.models import PatientCreate, PatientQuery
from tests.helpers import committed

ADMIN = Caller(uuid.uuid4(), "desk@clinic.example", "Desk", "admin")  # type: ignore[arg-type]


def add(name: str, email: str) -> uuid.UUID:
    ident = uuid.uuid4()
    with committed() as uow:
        patients.register(uow, ADMIN, PatientCreate(user_id=ident, email=email, name=name))
    return ident


def names(q: str | None, page_size: int = 50, page_token: str | None = None) -> tuple[list[str], str | None]:
    with committed() as uow:
        found = patients.find(uow, ADMIN, PatientQuery(q=q, page_size=page_size, page_token=page_token))
    return [p.name for p in found.items], found.next_page_token


def test_finds_by_part_of_name_or_email_and_takes_wildcards_literally(database_url: str) -> None:
    add("Zoë Müller", "zoe@example.com")
    add("Ann 100% Sure", "ann@example.com")
    add("Bob_Under", "bob@mail.example")
    add("Carl", "carl_x@example.com")
    assert names("müller")[0] == ["Zoë Müller"]
    assert names("ZOE@EX")[0] == ["Zoë Müller"]
    assert names("%")[0] == ["Ann 100% Sure"]
    assert names("_")[0] == ["Bob_Under", "Carl"]
    assert names("mail.example")[0] == ["Bob_Under"]
    assert names("!")[0] == []
    assert names(None)[0] == ["Ann 100% Sure", "Bob_Under", "Carl", "Zoë Müller"]


def test_pages_through_every_match_once(database_url: str) -> None:
    for i in range(5):
        add(f"Same Name {i % 2}", f"same{i}@example.com")
    seen: list[str] = []
    page, token = names("same", page_size=2)
    seen += page
    while token:
        page, token = names("same", page_size=2, page_token=token)
        seen += page
    assert sorted(seen) == seen and len(seen) == 5


@pytest.mark.parametrize("role", ["patient", "doctor"])
def test_only_the_front_desk_searches(database_url: str, role: str) -> None:
    caller = Caller(uuid.uuid4(), f"{role}@example.com", "Someone", role)  # type: ignore[arg-type]
    with committed() as uow, pytest.raises(Forbidden):
        patients.find(uow, caller, PatientQuery(q="a"))


def test_a_doctor_reads_only_patients_with_an_appointment_with_them(database_url: str) -> None:
    """(That a doctor does read a patient who booked them: tests/e2e/test_access.py.)"""
    ident = add("Pat", "pat@example.com")
    doctor = Caller(uuid.uuid4(), "doc@example.com", "Doc", "doctor")  # type: ignore[arg-type]
    with committed() as uow, pytest.raises(NotFound):
        patients.get(uow, doctor, ident)
    with committed() as uow:
        assert patients.get(uow, ADMIN, ident).name == "Pat"
        me = Caller(ident, "pat@example.com", "Pat", "patient")  # type: ignore[arg-type]
        assert patients.get(uow, me, ident).email == "pat@example.com"
