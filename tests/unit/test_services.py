"""The booking rules without a database: the services over in-memory fakes (tests/unit/fakes.py).

The access matrix, the caps, the hourly limit of changes, the state transitions and
the idempotency replay. The SQL behind each fake is proven in tests/integration.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from shared import appointments, idempotency, patients, policy
from shared.auth import Caller
from shared.errors import (
    Conflict,
    Forbidden,
    NotFound,
    SlotTaken,
    TooManyChanges,
    TooManyUpcoming,
    TransitionNotAllowed,
    Unprocessable,
)
from shared.models import AppointmentChange, AppointmentCreate, PatientCreate
from shared.policy import Action
from shared.settings import get_settings
from tests.unit.fakes import FakeUnitOfWork


def caller(role: str) -> Caller:
    ident = uuid.uuid4()
    return Caller(ident, f"{role}-{ident.hex[:8]}@example.com", role.title(), role)  # type: ignore[arg-type]


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def doctor() -> Caller:
    return caller("doctor")


@pytest.fixture
def patient(uow: FakeUnitOfWork) -> Caller:
    who = caller("patient")
    uow.patients.create_user(who.id, who.email, who.name, "patient")
    uow.patients.save_profile(who.id, None, None, set())
    return who


def book(uow: FakeUnitOfWork, who: Caller, slot: uuid.UUID, for_patient: Caller | None = None) -> uuid.UUID:
    command = AppointmentCreate(slot_id=slot, patient_id=for_patient.id if for_patient else None)
    return appointments.book(uow, who, command).id


# -- the access matrix ---------------------------------------------------------------------

P, D, A = "patient", "doctor", "admin"
# (action, what each role may: "any", "own" or "-") as the product promises (README's table).
MATRIX = [
    (Action.BOOK, {P: "own", D: "-", A: "any"}),
    (Action.HOLD_APPOINTMENTS, {P: "own", D: "-", A: "-"}),
    (Action.BOOK_PAST_UPCOMING_CAP, {P: "-", D: "-", A: "any"}),
    (Action.CHANGE_PAST_HOURLY_LIMIT, {P: "-", D: "any", A: "any"}),
    (Action.SEE_APPOINTMENT, {P: "own", D: "own", A: "any"}),
    (Action.MOVE, {P: "own", D: "own", A: "any"}),
    (Action.CANCEL, {P: "own", D: "own", A: "any"}),
    (Action.CANCEL_STARTED, {P: "-", D: "own", A: "any"}),
    (Action.RECORD_OUTCOME, {P: "-", D: "own", A: "any"}),
    (Action.REGISTER_PATIENT, {P: "own", D: "-", A: "any"}),
    (Action.FIND_PATIENTS, {P: "-", D: "-", A: "any"}),
    (Action.SEE_PATIENT, {P: "own", D: "-", A: "any"}),
    (Action.SEE_PATIENTS_BOOKED_WITH_THEM, {P: "-", D: "own", A: "-"}),
    (Action.CREATE_DOCTOR, {P: "-", D: "-", A: "any"}),
    (Action.PUBLISH_AVAILABILITY, {P: "-", D: "own", A: "any"}),
    (Action.JOIN_WAITLIST, {P: "own", D: "-", A: "any"}),
    (Action.SEE_WAITLIST_ENTRY, {P: "own", D: "own", A: "any"}),
    (Action.LEAVE_WAITLIST, {P: "own", D: "-", A: "any"}),
    (Action.ANSWER_OFFER, {P: "own", D: "-", A: "any"}),
]


def test_the_matrix_names_every_action() -> None:
    assert {action for action, _ in MATRIX} == set(Action)


@pytest.mark.parametrize(("action", "grants"), MATRIX, ids=[a.name for a, _ in MATRIX])
def test_the_access_matrix(action: Action, grants: dict[str, str]) -> None:
    for role, expected in grants.items():
        who, someone_else = caller(role), uuid.uuid4()
        own = policy.allows(who, action, owners=[who.id])
        anyones = policy.allows(who, action, owners=[someone_else])
        assert (own, anyones) == {"any": (True, True), "own": (True, False), "-": (False, False)}[expected], role
        if expected == "-":
            with pytest.raises(Forbidden, match="needs the role"):
                policy.authorise(who, action)
        elif expected == "own":
            with pytest.raises(Forbidden, match="only for themself"):
                policy.authorise(who, action, owners=[someone_else])


# -- booking -------------------------------------------------------------------------------


def test_a_patient_books_and_the_change_causes_its_messages(
    uow: FakeUnitOfWork, patient: Caller, doctor: Caller
) -> None:
    slot = uow.appointments.add_slot(doctor.id, hours_from_now=48)
    appointment_id = book(uow, patient, slot)
    assert uow.appointments.rows[appointment_id]["patient_id"] == patient.id
    assert [a["action"] for a in uow.appointments.audit] == ["BOOKED"]
    kinds = [row["payload"].get("kind", row["payload"].get("type")) for row in uow.outbox]
    assert kinds == ["CONFIRMATION", "REMINDER", "appointment.booked"]
    assert uow.outbox[0]["payload"]["audit_id"] == uow.appointments.audit[0]["id"]


def test_who_may_book_for_whom(uow: FakeUnitOfWork, patient: Caller, doctor: Caller) -> None:
    slot = uow.appointments.add_slot(doctor.id, hours_from_now=48)
    with pytest.raises(Forbidden):
        book(uow, doctor, slot)
    with pytest.raises(Forbidden):
        book(uow, caller("patient"), slot, for_patient=patient)
    admin = caller("admin")
    with pytest.raises(Unprocessable, match="patient_id"):
        book(uow, admin, slot)
    with pytest.raises(NotFound, match="no such patient"):
        book(uow, admin, slot, for_patient=caller("patient"))
    assert uow.appointments.rows[book(uow, admin, slot, for_patient=patient)]["patient_id"] == patient.id


def test_each_refusal_of_the_booking_statement_is_its_own_error(
    uow: FakeUnitOfWork, patient: Caller, doctor: Caller
) -> None:
    with pytest.raises(NotFound, match="no such slot"):
        book(uow, patient, uuid.uuid4())
    with pytest.raises(Unprocessable, match="in the past"):
        book(uow, patient, uow.appointments.add_slot(doctor.id, hours_from_now=-1))
    slot = uow.appointments.add_slot(doctor.id, hours_from_now=5)
    book(uow, patient, slot)
    with pytest.raises(SlotTaken):
        book(uow, caller("patient"), slot)
    uow.accounts.set_role(patient.id, "doctor")
    with pytest.raises(Forbidden, match="this account is a doctor account"):
        book(uow, patient, uow.appointments.add_slot(doctor.id, hours_from_now=6))


def test_the_cap_on_upcoming_appointments_binds_patients_not_the_clinic(
    uow: FakeUnitOfWork, patient: Caller, doctor: Caller
) -> None:
    cap = get_settings().max_upcoming_appointments
    for hour in range(cap):
        book(uow, patient, uow.appointments.add_slot(doctor.id, hours_from_now=10 + hour))
    with pytest.raises(TooManyUpcoming, match=f"you already hold {cap} upcoming"):
        book(uow, patient, uow.appointments.add_slot(doctor.id, hours_from_now=1))
    book(uow, caller("admin"), uow.appointments.add_slot(doctor.id, hours_from_now=1), for_patient=patient)


def test_the_hourly_limit_counts_a_patients_own_changes(
    uow: FakeUnitOfWork, patient: Caller, doctor: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_CHANGES_PER_HOUR", "2")
    get_settings.cache_clear()
    try:
        first = book(uow, patient, uow.appointments.add_slot(doctor.id, hours_from_now=10))
        appointments.change(uow, patient, first, AppointmentChange(status="CANCELLED"))  # counts, never refused
        with pytest.raises(TooManyChanges) as refused:
            book(uow, patient, uow.appointments.add_slot(doctor.id, hours_from_now=11))
        assert refused.value.retry_after == 1800
        second = book(
            uow, caller("admin"), uow.appointments.add_slot(doctor.id, hours_from_now=12), for_patient=patient
        )
        with pytest.raises(TooManyChanges):  # a move is a change too
            appointments.change(
                uow, patient, second, AppointmentChange(slot_id=uow.appointments.add_slot(doctor.id, 13))
            )
        # The clinic's changes are not counted: its doctor moves it.
        mine = Caller(doctor.id, doctor.email, doctor.name, "doctor")
        target = uow.appointments.add_slot(doctor.id, hours_from_now=14)
        assert appointments.change(uow, mine, second, AppointmentChange(slot_id=target)).slot_id == target
    finally:
        get_settings.cache_clear()


# -- state transitions ---------------------------------------------------------------------


def test_cancel_complete_and_no_show_follow_the_states(uow: FakeUnitOfWork, patient: Caller, doctor: Caller) -> None:
    soon = book(uow, patient, uow.appointments.add_slot(doctor.id, hours_from_now=3))
    with pytest.raises(Forbidden):
        appointments.change(uow, patient, soon, AppointmentChange(status="COMPLETED"))
    with pytest.raises(TransitionNotAllowed, match="only once the slot has started"):
        appointments.change(uow, doctor, soon, AppointmentChange(status="COMPLETED"))
    assert appointments.change(uow, patient, soon, AppointmentChange(status="CANCELLED")).status == "CANCELLED"
    assert uow.appointments.dropped_tasks == [soon]
    with pytest.raises(TransitionNotAllowed, match="CANCELLED appointment cannot be cancelled"):
        appointments.change(uow, patient, soon, AppointmentChange(status="CANCELLED"))

    started = book(uow, patient, uow.appointments.add_slot(doctor.id, hours_from_now=4))
    uow.appointments.now += timedelta(hours=4, minutes=5)
    with pytest.raises(TransitionNotAllowed, match="only the clinic"):
        appointments.change(uow, patient, started, AppointmentChange(status="CANCELLED"))
    with pytest.raises(TransitionNotAllowed, match="no longer be moved"):
        appointments.change(uow, patient, started, AppointmentChange(slot_id=uow.appointments.add_slot(doctor.id, 9)))
    assert appointments.change(uow, doctor, started, AppointmentChange(status="NO_SHOW")).status == "NO_SHOW"
    with pytest.raises(TransitionNotAllowed, match="NO_SHOW appointment cannot become COMPLETED"):
        appointments.change(uow, doctor, started, AppointmentChange(status="COMPLETED"))
    assert [a["action"] for a in uow.appointments.audit] == ["BOOKED", "CANCELLED", "BOOKED", "NO_SHOW"]


def test_another_patients_appointment_does_not_exist(uow: FakeUnitOfWork, patient: Caller, doctor: Caller) -> None:
    visit = book(uow, patient, uow.appointments.add_slot(doctor.id, hours_from_now=3))
    for stranger in (caller("patient"), caller("doctor")):
        with pytest.raises(NotFound):
            appointments.get_appointment(uow, stranger, visit)
        with pytest.raises(NotFound):
            appointments.change(uow, stranger, visit, AppointmentChange(status="CANCELLED"))
    assert appointments.get_appointment(uow, caller("admin"), visit).id == visit


def test_a_move_refuses_the_same_slot_and_a_started_one(uow: FakeUnitOfWork, patient: Caller, doctor: Caller) -> None:
    slot = uow.appointments.add_slot(doctor.id, hours_from_now=3)
    visit = book(uow, patient, slot)
    with pytest.raises(Unprocessable, match="already on this slot"):
        appointments.change(uow, patient, visit, AppointmentChange(slot_id=slot))
    with pytest.raises(Unprocessable, match="new slot is in the past"):
        appointments.change(uow, patient, visit, AppointmentChange(slot_id=uow.appointments.add_slot(doctor.id, -2)))
    with pytest.raises(NotFound, match="no such slot"):
        appointments.change(uow, patient, visit, AppointmentChange(slot_id=uuid.uuid4()))


def test_patients_register_themselves_and_the_clinic_registers_anyone(uow: FakeUnitOfWork) -> None:
    me = caller("patient")
    _, created = patients.register(uow, me, PatientCreate(phone="+1 555 0100"))
    assert created and uow.patients.profiles[me.id]["phone"] == "+1 555 0100"
    with pytest.raises(Forbidden):
        patients.register(uow, me, PatientCreate(user_id=uuid.uuid4(), email="x@example.com", name="X"))
    admin = caller("admin")
    with pytest.raises(Unprocessable):
        patients.register(uow, admin, PatientCreate())
    other = uuid.uuid4()
    patients.register(uow, admin, PatientCreate(user_id=other, email="x@example.com", name="X"))
    with pytest.raises(Conflict, match="another name"):
        patients.register(uow, admin, PatientCreate(user_id=other, email="x@example.com", name="Y"))


# -- idempotency ---------------------------------------------------------------------------


def test_a_repeated_key_replays_the_first_answer_and_refuses_another_request(uow: FakeUnitOfWork) -> None:
    who = caller("patient")
    runs: list[int] = []

    def answer() -> tuple[int, bytes]:
        runs.append(1)
        return 201, b'{"id": "first"}'

    request = idempotency.fingerprint("POST", "/appointments", b'{"slot_id": "s", "reason": null}')
    assert idempotency.answer_once(uow, who, "k", request, answer) == (201, b'{"id": "first"}')
    # The same request, its JSON written otherwise: replayed, not run again.
    again = idempotency.fingerprint("POST", "/appointments", b'{"reason":null,"slot_id":"s"}')
    assert idempotency.answer_once(uow, who, "k", again, answer) == (201, b'{"id": "first"}')
    assert runs == [1]
    other = idempotency.fingerprint("POST", "/appointments", b'{"slot_id": "t"}')
    with pytest.raises(Unprocessable, match="different request"):
        idempotency.answer_once(uow, who, "k", other, answer)
    # Another caller's key of the same name is theirs.
    assert idempotency.answer_once(uow, caller("patient"), "k", request, answer)[0] == 201
    assert runs == [1, 1]


def test_a_key_must_be_printable_ascii() -> None:
    assert idempotency.key_from_header(None) is None
    assert idempotency.key_from_header(" k1 ") == "k1"
    for bad in ("", "k" * 256, "clé", "a\tb"):
        with pytest.raises(Unprocessable):
            idempotency.key_from_header(bad)
