"""The waitlist's rules without a database: its use cases over in-memory fakes
(tests/unit/fakes.py, whose matching states what shared/sql/waitlist.sql does).

Matching, the cap on entries, the hold and what it refuses, and the transitions of an
offer (accept, decline, expiry, leaving). The SQL behind each fake, and the races, are
proven in tests/integration/test_waitlist.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import pytest

from shared import appointments, waitlist
from shared.auth import Caller
from shared.errors import AlreadyBookedInRange, NotFound, OfferEnded, SlotHeld, TooManyEntries
from shared.models import AppointmentChange, AppointmentCreate, WaitlistCreate, WaitlistQuery
from shared.settings import get_settings
from tests.unit.fakes import FakeUnitOfWork
from tests.unit.test_services import caller

# The day the slots are on: far enough ahead for the lead time, within a year for joining.
DAY = 3


@pytest.fixture
def uow() -> FakeUnitOfWork:
    work = FakeUnitOfWork()
    # join() checks ranges against the real clock, so the fakes' clock is the real one.
    work.appointments.now = datetime.now(UTC).replace(microsecond=0)
    return work


@pytest.fixture
def doctor(uow: FakeUnitOfWork) -> uuid.UUID:
    return uow.waitlist.add_doctor()


def patient(uow: FakeUnitOfWork) -> Caller:
    who = caller("patient")
    uow.patients.create_user(who.id, who.email, who.name, "patient")
    uow.patients.save_profile(who.id, None, None, set())
    return who


def day(uow: FakeUnitOfWork, days: int = DAY) -> datetime:
    """Midnight UTC of the day `days` ahead."""
    return (uow.appointments.now + timedelta(days=days)).replace(hour=0, minute=0, second=0)


def slot_at(uow: FakeUnitOfWork, doctor: uuid.UUID, hour: float, start: datetime | None = None) -> uuid.UUID:
    """A 30-minute slot at `hour` of the day DAY ahead (or at `start`)."""
    start = start or day(uow) + timedelta(hours=hour)
    return uow.appointments.add_slot(doctor, (start - uow.appointments.now).total_seconds() / 3600)


def join(uow: FakeUnitOfWork, who: Caller, doctor: uuid.UUID, days: int = DAY, **times: str) -> uuid.UUID:
    date = str(day(uow, days).date())
    body = WaitlistCreate.model_validate({"doctor_id": str(doctor), "from": date, "to": date, **times})
    return waitlist.join(uow, who, body).id


def book(uow: FakeUnitOfWork, who: Caller, slot: uuid.UUID) -> uuid.UUID:
    return appointments.book(uow, who, AppointmentCreate(slot_id=slot)).id


def cancel(uow: FakeUnitOfWork, who: Caller, appointment: uuid.UUID) -> None:
    appointments.change(uow, who, appointment, AppointmentChange(status="CANCELLED"))


def freed(uow: FakeUnitOfWork, doctor: uuid.UUID, hour: float = 9, start: datetime | None = None) -> uuid.UUID:
    """A slot booked by someone who then cancels it: the freeing change."""
    slot, holder = slot_at(uow, doctor, hour, start), patient(uow)
    cancel(uow, holder, book(uow, holder, slot))
    return slot


def status(uow: FakeUnitOfWork, entry: uuid.UUID) -> str:
    return str(uow.waitlist.entries[entry]["status"])


def held_for(uow: FakeUnitOfWork, slot: uuid.UUID) -> uuid.UUID | None:
    """The entry the slot is held for, if any."""
    offer = uow.appointments.slots[slot]["held_offer_id"]
    return None if offer is None else uow.waitlist.offers[offer]["entry_id"]


def offer_of(uow: FakeUnitOfWork, entry: uuid.UUID) -> dict[str, object]:
    [offer] = [o for o in uow.waitlist.offers.values() if o["entry_id"] == entry and o["status"] == "OFFERED"]
    return offer


# -- matching and the hold -----------------------------------------------------------------


def test_a_freed_slot_is_held_for_the_earliest_joined_matching_entry_with_its_messages(
    uow: FakeUnitOfWork, doctor: uuid.UUID
) -> None:
    first, second = patient(uow), patient(uow)
    entries = [join(uow, first, doctor), join(uow, second, doctor)]
    uow.outbox.clear()
    slot = freed(uow, doctor)
    assert held_for(uow, slot) == entries[0]
    assert [status(uow, e) for e in entries] == ["OFFERED", "WAITING"]
    offer = offer_of(uow, entries[0])
    assert offer["expires_at"] == uow.appointments.now + timedelta(minutes=get_settings().hold_minutes)
    rows = {row["name"]: row for row in uow.outbox if row.get("ordering_key") == str(slot)}
    email, expiry = rows[f"offer-{offer['id']}-email"], rows[f"offer-{offer['id']}-expiry"]
    assert (email["payload"]["kind"], expiry["payload"]["kind"]) == ("WAITLIST_OFFER", "OFFER_EXPIRY")
    assert expiry["deliver_at"] == waitlist._instant(offer["expires_at"])
    assert [r["payload"]["type"] for r in rows.values() if r["target"] == "EVENT"] == ["waitlist.offered"]


def test_a_held_slot_is_neither_booked_nor_moved_to_by_anyone_else(uow: FakeUnitOfWork, doctor: uuid.UUID) -> None:
    join(uow, patient(uow), doctor)
    slot = freed(uow, doctor)
    someone = patient(uow)
    with pytest.raises(SlotHeld):
        book(uow, someone, slot)
    theirs = book(uow, someone, slot_at(uow, doctor, 15))
    with pytest.raises(SlotHeld):
        appointments.change(uow, someone, theirs, AppointmentChange(slot_id=slot))


@pytest.mark.parametrize(
    "unmatched",
    ["another doctor", "another day", "other times of day", "within the lead time", "patient busy then", "entry over"],
)
def test_an_entry_that_does_not_match_is_passed_over_and_the_slot_is_free(
    uow: FakeUnitOfWork, doctor: uuid.UUID, unmatched: str
) -> None:
    who, nine = patient(uow), day(uow) + timedelta(hours=9)
    match unmatched:
        case "another doctor":
            join(uow, who, uow.waitlist.add_doctor())
        case "another day":
            join(uow, who, doctor, days=DAY + 1)
        case "other times of day":
            join(uow, who, doctor, start="10:00", end="12:00")
        case "within the lead time":
            join(uow, who, doctor)
            uow.appointments.now = nine - timedelta(minutes=get_settings().waitlist_lead_minutes)
        case "patient busy then":
            join(uow, who, doctor)
            book(uow, who, slot_at(uow, uow.waitlist.add_doctor(), 8.75))  # 08:45-09:15 elsewhere
        case "entry over":
            join(uow, who, doctor)
            book(uow, who, slot_at(uow, doctor, 16))  # booked that doctor in the range: the entry ended
    slot = freed(uow, doctor, start=nine)
    assert held_for(uow, slot) is None
    book(uow, patient(uow), slot)  # free to anyone


def test_times_of_day_are_the_doctors(uow: FakeUnitOfWork) -> None:
    doctor = uow.waitlist.add_doctor("America/New_York")
    mornings = join(uow, patient(uow), doctor, start="09:00", end="12:00")
    afternoons = join(uow, patient(uow), doctor, start="13:00", end="17:00")
    # 14:00 UTC is 09:00 or 10:00 in New York (EST or EDT): a morning there either way.
    assert held_for(uow, freed(uow, doctor, hour=14)) == mornings
    assert status(uow, afternoons) == "WAITING"


def test_an_entry_is_offered_a_slot_only_once(uow: FakeUnitOfWork, doctor: uuid.UUID) -> None:
    first, second = patient(uow), patient(uow)
    entries = [join(uow, first, doctor), join(uow, second, doctor)]
    slot = freed(uow, doctor)
    waitlist.decline(uow, first, entries[0])
    assert held_for(uow, slot) == entries[1]
    waitlist.decline(uow, second, entries[1])
    assert held_for(uow, slot) is None  # both were offered it: free to everyone
    assert [status(uow, e) for e in entries] == ["WAITING", "WAITING"]


# -- the cap -------------------------------------------------------------------------------


def test_a_patient_waits_on_at_most_the_cap_and_an_entry_over_does_not_count(
    uow: FakeUnitOfWork, doctor: uuid.UUID
) -> None:
    who, cap = patient(uow), get_settings().waitlist_max_entries
    for _ in range(cap):
        join(uow, who, uow.waitlist.add_doctor())
    with pytest.raises(TooManyEntries):
        join(uow, who, doctor)
    assert uow.waitlist.turns.count(who.id) == cap + 1  # every join took the patient's turn first
    # Booking one of those doctors in the range ends that entry: room for another.
    first_doctor = next(iter(uow.waitlist.entries.values()))["doctor_id"]
    book(uow, who, slot_at(uow, first_doctor, 10))
    join(uow, who, doctor)


# -- joining a list one is already booked on -----------------------------------------------


def test_joining_a_doctors_list_while_booked_with_them_in_the_range_is_refused_and_changes_nothing(
    uow: FakeUnitOfWork, doctor: uuid.UUID
) -> None:
    """The entry would be over at once (an entry ends when its patient books that doctor
    in its range): refused, not written as WAITING and listed as BOOKED."""
    who = patient(uow)
    appointment = book(uow, who, slot_at(uow, doctor, 10.5))
    events, outbox = len(uow.waitlist.events), len(uow.outbox)
    date = str(day(uow).date())
    with pytest.raises(AlreadyBookedInRange, match=rf"you already have .* on {date} at 10:30 \(UTC\)"):
        join(uow, who, doctor)
    with pytest.raises(AlreadyBookedInRange):  # whatever times of day it names, as the entry's end has it
        join(uow, who, doctor, start="14:00", end="16:00")
    assert uow.waitlist.entries == {}
    assert (len(uow.waitlist.events), len(uow.outbox)) == (events, outbox)
    # The front desk joining for them is told the same, of the patient.
    desk = caller("admin")
    body = WaitlistCreate.model_validate(
        {"doctor_id": str(doctor), "from": date, "to": date, "patient_id": str(who.id)}
    )
    with pytest.raises(AlreadyBookedInRange, match="the patient already has"):
        waitlist.join(uow, desk, body)
    # Another day, or another doctor, is a list worth waiting on; so is that day once cancelled.
    join(uow, who, doctor, days=DAY + 1)
    join(uow, who, uow.waitlist.add_doctor())
    cancel(uow, who, appointment)
    assert status(uow, join(uow, who, doctor)) == "WAITING"


def test_the_refusal_comes_after_the_patients_turn_and_before_the_cap(uow: FakeUnitOfWork, doctor: uuid.UUID) -> None:
    who, cap = patient(uow), get_settings().waitlist_max_entries
    book(uow, who, slot_at(uow, doctor, 10))
    for _ in range(cap):
        join(uow, who, uow.waitlist.add_doctor())
    with pytest.raises(AlreadyBookedInRange):
        join(uow, who, doctor)
    assert uow.waitlist.turns.count(who.id) == cap + 1


# -- accept, decline, expiry, leaving -------------------------------------------------------


def test_accept_books_the_held_slot_once(uow: FakeUnitOfWork, doctor: uuid.UUID) -> None:
    who = patient(uow)
    entry = join(uow, who, doctor)
    slot = freed(uow, doctor)
    appointment = waitlist.accept(uow, who, entry)
    assert (appointment.slot_id, appointment.patient_id) == (slot, who.id)
    assert held_for(uow, slot) is None
    assert status(uow, entry) == "BOOKED"
    [offer] = [o for o in uow.waitlist.offers.values() if o["entry_id"] == entry]
    assert (offer["status"], offer["appointment_id"]) == ("ACCEPTED", appointment.id)
    assert waitlist.accept(uow, who, entry).id == appointment.id  # again: the same appointment
    booked = [a for a in uow.appointments.rows.values() if a["slot_id"] == slot and a["status"] == "BOOKED"]
    assert len(booked) == 1
    assert [e["action"] for e in uow.waitlist.events if e["entry_id"] == entry] == ["JOINED", "OFFERED", "ACCEPTED"]


def test_accept_after_the_hold_expired_is_refused_and_the_expiry_passes_it_on(
    uow: FakeUnitOfWork, doctor: uuid.UUID
) -> None:
    first, second = patient(uow), patient(uow)
    entries = [join(uow, first, doctor), join(uow, second, doctor)]
    slot = freed(uow, doctor)
    offer = offer_of(uow, entries[0])
    assert waitlist.expire(uow, offer["id"]) is False  # not due yet
    uow.appointments.now = offer["expires_at"]
    with pytest.raises(OfferEnded, match="expired"):
        waitlist.accept(uow, first, entries[0])
    assert waitlist.expire(uow, offer["id"]) is True
    assert waitlist.expire(uow, offer["id"]) is False  # once
    assert uow.waitlist.offers[offer["id"]]["status"] == "EXPIRED"
    assert held_for(uow, slot) == entries[1]
    assert status(uow, entries[0]) == "WAITING"


def test_an_answer_to_an_offer_that_ended_is_refused_when_another_is_open_and_changes_nothing(
    uow: FakeUnitOfWork, doctor: uuid.UUID
) -> None:
    """The patient read offer A; it expired and the entry was offered B since: their late
    click, naming A, must neither book nor decline B."""
    who = patient(uow)
    entry = join(uow, who, doctor)
    shown = freed(uow, doctor, hour=9)
    later = freed(uow, doctor, hour=11)  # passed over while the entry holds the first
    first = offer_of(uow, entry)
    uow.appointments.now = first["expires_at"]
    assert waitlist.expire(uow, first["id"]) is True
    second = offer_of(uow, entry)
    assert (second["slot_id"], held_for(uow, later)) == (later, entry)
    events, outbox = len(uow.waitlist.events), len(uow.outbox)
    for answer in (waitlist.accept, waitlist.decline):
        with pytest.raises(OfferEnded, match="another offer"):
            answer(uow, who, entry, first["id"])
    assert (offer_of(uow, entry)["id"], held_for(uow, later), held_for(uow, shown)) == (second["id"], entry, None)
    assert status(uow, entry) == "OFFERED"
    assert not [a for a in uow.appointments.rows.values() if a["patient_id"] == who.id]
    assert (len(uow.waitlist.events), len(uow.outbox)) == (events, outbox)
    # The offer open now, named, is accepted; again, the same appointment; naming the
    # old one still refuses; naming none answers the accepted one, as before.
    appointment = waitlist.accept(uow, who, entry, second["id"])
    assert appointment.slot_id == later
    assert waitlist.accept(uow, who, entry, second["id"]).id == appointment.id
    with pytest.raises(OfferEnded):
        waitlist.accept(uow, who, entry, first["id"])
    assert waitlist.accept(uow, who, entry).id == appointment.id


def test_declining_the_offer_shown_passes_it_on(uow: FakeUnitOfWork, doctor: uuid.UUID) -> None:
    first, second = patient(uow), patient(uow)
    entries = [join(uow, first, doctor), join(uow, second, doctor)]
    slot = freed(uow, doctor)
    waitlist.decline(uow, first, entries[0], offer_of(uow, entries[0])["id"])
    assert held_for(uow, slot) == entries[1]


def test_decline_with_no_one_else_waiting_frees_the_slot(uow: FakeUnitOfWork, doctor: uuid.UUID) -> None:
    who = patient(uow)
    entry = join(uow, who, doctor)
    slot = freed(uow, doctor)
    waitlist.decline(uow, who, entry)
    with pytest.raises(OfferEnded):
        waitlist.decline(uow, who, entry)
    with pytest.raises(OfferEnded):
        waitlist.accept(uow, who, entry)
    assert held_for(uow, slot) is None
    book(uow, patient(uow), slot)


def test_an_entry_waiting_again_is_offered_a_slot_freed_while_it_held_another(
    uow: FakeUnitOfWork, doctor: uuid.UUID
) -> None:
    who = patient(uow)
    entry = join(uow, who, doctor)
    first = freed(uow, doctor, hour=9)
    second = freed(uow, doctor, hour=11)  # its only match holds the first: it stays free
    assert held_for(uow, second) is None
    waitlist.decline(uow, who, entry)
    assert held_for(uow, second) == entry
    assert held_for(uow, first) is None


def test_leaving_with_an_open_offer_declines_it_and_passes_the_slot_on(uow: FakeUnitOfWork, doctor: uuid.UUID) -> None:
    first, second = patient(uow), patient(uow)
    entries = [join(uow, first, doctor), join(uow, second, doctor)]
    slot = freed(uow, doctor)
    offer = offer_of(uow, entries[0])
    waitlist.leave(uow, first, entries[0])
    waitlist.leave(uow, first, entries[0])  # again: nothing changes
    assert uow.waitlist.offers[offer["id"]]["status"] == "DECLINED"
    assert (status(uow, entries[0]), held_for(uow, slot)) == ("LEFT", entries[1])
    assert [e["action"] for e in uow.waitlist.events if e["entry_id"] == entries[0]] == [
        "JOINED",
        "OFFERED",
        "DECLINED",
        "LEFT",
    ]


def test_another_patients_entry_does_not_exist(uow: FakeUnitOfWork, doctor: uuid.UUID) -> None:
    who, other = patient(uow), patient(uow)
    entry = join(uow, who, doctor)
    freed(uow, doctor)
    for answer in (waitlist.accept, waitlist.decline, waitlist.leave):
        with pytest.raises(NotFound):
            answer(uow, other, entry)
    assert status(uow, entry) == "OFFERED"
    assert waitlist.list_entries(uow, other, WaitlistQuery()).items == []
    [mine] = waitlist.list_entries(uow, who, WaitlistQuery()).items
    assert mine.offer is not None and mine.offer.start_time.time() == time(9)
