"""The waitlist on a real PostgreSQL (decision 0013): a freed slot is held for the
earliest matching entry in the transaction that freed it, and no booking racing that
transaction gets past the hold; accept and expiry racing end in one of the two."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

import pg8000.native
import pytest

from shared import appointments, waitlist
from shared.auth import Caller
from shared.db.connection import reset_pool
from shared.errors import (
    AlreadyBookedInRange,
    NotFound,
    OfferEnded,
    SlotHeld,
    SlotTaken,
    TooManyEntries,
    Unprocessable,
)
from shared.models import AppointmentChange, AppointmentCreate, WaitlistCreate, WaitlistQuery
from tests.helpers import committed
from tests.integration.notify_support import environment
from tests.integration.test_first_use import new_caller

Conn = pg8000.native.Connection
DIRECT = 50


@pytest.fixture(autouse=True)
def settings(database_url: str) -> Iterator[None]:
    # Enough connections for every racing thread to be inside its transaction at once.
    with environment(DB_POOL_SIZE="64", WAITLIST_LEAD_MINUTES="120", HOLD_MINUTES="15"):
        reset_pool()
        yield
    reset_pool()


def new_doctor(conn: Conn, zone: str = "UTC") -> uuid.UUID:
    doctor = uuid.uuid4()
    conn.run(
        "INSERT INTO users (id, email, name, role) VALUES (:id, :e, 'Doc', 'doctor')", id=doctor, e=f"{doctor}@x.o"
    )
    conn.run("INSERT INTO doctors_profiles (user_id, specialty, timezone) VALUES (:id, 'GP', :z)", id=doctor, z=zone)
    return doctor


def new_slot(conn: Conn, doctor: uuid.UUID, start: datetime, minutes: int = 30) -> uuid.UUID:
    rows = conn.run(
        "INSERT INTO slots (doctor_id, start_time, end_time) VALUES (:d, :s, :e) RETURNING id",
        d=doctor,
        s=start,
        e=start + timedelta(minutes=minutes),
    )
    return uuid.UUID(str(rows[0][0]))


def book(caller: Caller, slot: uuid.UUID) -> appointments.Appointment:
    with committed() as uow:
        return appointments.book(uow, caller, AppointmentCreate(slot_id=slot))


def cancel(caller: Caller, appointment: uuid.UUID) -> None:
    with committed() as uow:
        appointments.change(uow, caller, appointment, AppointmentChange(status="CANCELLED"))


def join(caller: Caller, doctor: uuid.UUID, days: tuple[date, date], **times: str) -> uuid.UUID:
    body = WaitlistCreate.model_validate({"doctor_id": str(doctor), "from": days[0], "to": days[1], **times})
    with committed() as uow:
        return waitlist.join(uow, caller, body).id


def entry_of(caller: Caller) -> waitlist.WaitlistEntry:
    with committed() as uow:
        items = waitlist.list_entries(uow, caller, WaitlistQuery(active=False)).items
    assert len(items) == 1
    return items[0]


def booked_on(conn: Conn, slot: uuid.UUID) -> int:
    return int(conn.run("SELECT count(*) FROM appointments WHERE slot_id = :s AND status = 'BOOKED'", s=slot)[0][0])


def open_offers(conn: Conn, slot: uuid.UUID) -> list[uuid.UUID]:
    rows = conn.run(
        "SELECT e.patient_id FROM waitlist_offers o JOIN waitlist_entries e ON e.id = o.entry_id"
        " WHERE o.slot_id = :s AND o.status = 'OFFERED'",
        s=slot,
    )
    return [uuid.UUID(str(r[0])) for r in rows]


def at_once(works: list[Callable[[], object]]) -> list[object]:
    """Runs every callable on its own thread, released together; each one's result or error."""
    barrier = threading.Barrier(len(works))
    results: list[object] = [None] * len(works)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = works[i]()
        except Exception as error:
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(works))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


class Day:
    """A doctor with one slot three days ahead, booked by `holder`, and one waiting patient."""

    def __init__(self, conn: Conn, waiting: int = 1, zone: str = "UTC") -> None:
        self.doctor = new_doctor(conn, zone)
        self.start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=3)
        self.slot = new_slot(conn, self.doctor, self.start)
        self.holder = new_caller()
        self.appointment = book(self.holder, self.slot).id
        self.waiting = [new_caller() for _ in range(waiting)]
        day = self.start.date()
        for patient in self.waiting:
            join(patient, self.doctor, (day - timedelta(days=1), day + timedelta(days=1)))


def test_a_cancellation_racing_50_direct_bookings_holds_the_slot_for_the_waiting_patient(sql: Conn) -> None:
    day = Day(sql)
    direct = [new_caller() for _ in range(DIRECT)]
    results = at_once([lambda: cancel(day.holder, day.appointment)] + [lambda p=p: book(p, day.slot) for p in direct])
    assert results[0] is None
    refused = results[1:]
    assert all(isinstance(r, (SlotHeld, SlotTaken)) for r in refused), [
        r for r in refused if not isinstance(r, Exception)
    ]
    assert booked_on(sql, day.slot) == 0
    assert open_offers(sql, day.slot) == [day.waiting[0].id]
    # Accepted: exactly one appointment, the waiting patient's.
    with committed() as uow:
        accepted = waitlist.accept(uow, day.waiting[0], entry_of(day.waiting[0]).id)
    assert accepted.patient_id == day.waiting[0].id and booked_on(sql, day.slot) == 1
    # Idempotent: again, the same appointment.
    with committed() as uow:
        assert waitlist.accept(uow, day.waiting[0], entry_of(day.waiting[0]).id).id == accepted.id
    assert entry_of(day.waiting[0]).status == "BOOKED"


def test_bookings_waiting_on_an_uncommitted_cancellation_all_see_its_hold(sql: Conn) -> None:
    """The interleaving of decision 0013 made certain: every booking starts while the
    cancelling transaction is open and has written its hold, and waits for it."""
    day = Day(sql)
    direct = [new_caller() for _ in range(DIRECT)]
    results: list[object] = []
    with committed() as uow:
        appointments.change(uow, day.holder, day.appointment, AppointmentChange(status="CANCELLED"))
        threads_done = threading.Event()

        def race() -> None:
            results.extend(at_once([lambda p=p: book(p, day.slot) for p in direct]))
            threads_done.set()

        racer = threading.Thread(target=race)
        racer.start()
        # Until every booking is blocked on this transaction's locks (connecting 50 takes a while).
        deadline, waiting_on_us = time.monotonic() + 30, 0
        while waiting_on_us < DIRECT and time.monotonic() < deadline:
            time.sleep(0.1)
            waiting_on_us = int(
                sql.run(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )[0][0]
            )
        assert not threads_done.is_set()
    racer.join()
    assert waiting_on_us == DIRECT, waiting_on_us
    assert len(results) == DIRECT and all(isinstance(r, SlotHeld) for r in results), {type(r).__name__ for r in results}
    assert booked_on(sql, day.slot) == 0 and open_offers(sql, day.slot) == [day.waiting[0].id]


def test_accept_and_expiry_at_the_last_second_end_in_one_or_the_other(sql: Conn) -> None:
    outcomes = {"booked": 0, "next offer": 0}
    for _ in range(12):
        day = Day(sql, waiting=2)
        cancel(day.holder, day.appointment)
        first = entry_of(day.waiting[0])
        assert first.offer is not None
        # The offer ends in 50 ms; both go at its last moment.
        sql.run(
            "UPDATE waitlist_offers SET expires_at = clock_timestamp() + interval '50 milliseconds' WHERE id = :id",
            id=first.offer.id,
        )
        time.sleep(0.045)

        def accept(entry: uuid.UUID = first.id, patient: Caller = day.waiting[0]) -> object:
            with committed() as uow:
                return waitlist.accept(uow, patient, entry)

        def expire(offer: uuid.UUID = first.offer.id) -> object:
            for _ in range(20):  # the task may come a moment early: it tries until due
                with committed() as uow:
                    if waitlist.expire(uow, offer):
                        return "expired"
                time.sleep(0.005)
            return "nothing"

        accepted, expired = at_once([accept, expire])
        booked, offered = booked_on(sql, day.slot), open_offers(sql, day.slot)
        if booked:
            assert isinstance(accepted, appointments.Appointment) and expired == "nothing" and offered == []
            outcomes["booked"] += 1
        else:
            assert isinstance(accepted, OfferEnded) and expired == "expired"
            assert offered == [day.waiting[1].id]
            outcomes["next offer"] += 1
    print("accept vs expiry:", outcomes)


def test_a_chain_of_three_decline_expire_and_the_third_gets_it_one_email_each(sql: Conn) -> None:
    day = Day(sql, waiting=3)
    first, second, third = day.waiting
    cancel(day.holder, day.appointment)
    assert open_offers(sql, day.slot) == [first.id]
    with committed() as uow:
        waitlist.decline(uow, first, entry_of(first).id)
    assert open_offers(sql, day.slot) == [second.id]
    offer = entry_of(second).offer
    assert offer is not None
    sql.run("UPDATE waitlist_offers SET expires_at = now() - interval '1 second' WHERE id = :id", id=offer.id)
    assert waitlist.expire_due() == 1
    assert open_offers(sql, day.slot) == [third.id]
    with committed() as uow:
        waitlist.accept(uow, third, entry_of(third).id)
    assert booked_on(sql, day.slot) == 1
    emails = sql.run(
        "SELECT e.patient_id, count(*) FROM outbox x"
        " JOIN waitlist_offers o ON x.payload->>'offer_id' = CAST(o.id AS text)"
        " JOIN waitlist_entries e ON e.id = o.entry_id"
        " WHERE x.payload->>'kind' = 'WAITLIST_OFFER' AND o.slot_id = :s GROUP BY e.patient_id",
        s=day.slot,
    )
    assert sorted((uuid.UUID(str(p)), int(n)) for p, n in emails) == sorted((p.id, 1) for p in day.waiting)
    actions = [r[0] for r in sql.run("SELECT action FROM waitlist_events WHERE slot_id = :s ORDER BY id", s=day.slot)]
    assert actions == ["OFFERED", "DECLINED", "OFFERED", "EXPIRED", "OFFERED", "ACCEPTED"]
    # The trail is append-only.
    with pytest.raises(pg8000.native.DatabaseError, match="append-only"):
        sql.run("DELETE FROM waitlist_events")


def test_the_sweep_reports_a_hold_it_could_not_end_and_ends_it_once_it_can(
    sql: Conn, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    day = Day(sql)
    cancel(day.holder, day.appointment)
    held = entry_of(day.waiting[0]).offer
    assert held is not None
    sql.run("UPDATE waitlist_offers SET expires_at = now() - interval '2 minutes' WHERE id = :id", id=held.id)

    def broken(uow: object, offer_id: uuid.UUID) -> bool:
        raise RuntimeError("injected: this offer cannot expire")

    with monkeypatch.context() as patch:
        patch.setattr(waitlist, "expire", broken)
        report = waitlist.sweep()
    assert report["offers_expired"] == 0
    assert report["overdue_holds"] >= 1 and report["oldest_overdue_hold_s"] >= 120
    assert "waitlist offer could not expire" in caplog.text
    assert open_offers(sql, day.slot) == [day.waiting[0].id]

    report = waitlist.sweep()
    assert report["offers_expired"] >= 1
    assert report["overdue_holds"] == 0 and report["oldest_overdue_hold_s"] == 0
    assert open_offers(sql, day.slot) == []


def test_a_waiting_patient_with_an_overlapping_appointment_is_passed_over(sql: Conn) -> None:
    day = Day(sql, waiting=2)
    busy, next_one = day.waiting
    elsewhere = new_slot(sql, new_doctor(sql), day.start + timedelta(minutes=10))
    book(busy, elsewhere)
    cancel(day.holder, day.appointment)
    assert open_offers(sql, day.slot) == [next_one.id]


def test_with_only_a_busy_patient_waiting_the_slot_becomes_free(sql: Conn) -> None:
    day = Day(sql, waiting=1)
    busy = day.waiting[0]
    book(busy, new_slot(sql, new_doctor(sql), day.start))
    cancel(day.holder, day.appointment)
    assert open_offers(sql, day.slot) == []
    assert book(new_caller(), day.slot).status == "BOOKED"


def test_times_of_day_are_the_doctors_and_a_dst_week_matches_as_the_slots_do(sql: Conn) -> None:
    """New York springs forward on Sunday 2027-03-14: 09:30 local is 14:30 UTC before it
    and 13:30 UTC after. An entry for 09:00-10:00 matches both, not 08:30 or 10:00."""
    doctor = new_doctor(sql, "America/New_York")
    patient = new_caller()
    with environment(WAITLIST_LEAD_MINUTES="0"):
        join(patient, doctor, (date(2027, 3, 12), date(2027, 3, 16)), start="09:00", end="10:00")
    instants = {
        "fri 09:30": datetime(2027, 3, 12, 14, 30, tzinfo=UTC),
        "mon 09:30": datetime(2027, 3, 15, 13, 30, tzinfo=UTC),
        "mon 08:30": datetime(2027, 3, 15, 12, 30, tzinfo=UTC),
        "mon 10:00": datetime(2027, 3, 15, 14, 0, tzinfo=UTC),
    }
    matched = {}
    for name, start in instants.items():
        slot = new_slot(sql, doctor, start)
        with committed() as uow:
            matched[name] = bool(waitlist.offer_freed_slot(uow, slot, None, "test"))
        if matched[name]:  # answered, so the entry waits again for the next one
            with committed() as uow:
                waitlist.decline(uow, patient, entry_of(patient).id)
    if datetime.now(UTC) < instants["fri 09:30"] - timedelta(hours=2):
        assert matched == {"fri 09:30": True, "mon 09:30": True, "mon 08:30": False, "mon 10:00": False}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"from": "2020-01-01", "to": "2020-01-05"}, Unprocessable),
        ({"from": "+400", "to": "+402"}, Unprocessable),
        ({"doctor_id": str(uuid.uuid4())}, NotFound),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(sql: Conn, body: dict[str, str], error: type[Exception]) -> None:
    doctor = new_doctor(sql)
    today = date.today()
    values = {"doctor_id": str(doctor), "from": str(today), "to": str(today + timedelta(days=7)), **body}
    for key in ("from", "to"):
        if values[key].startswith("+"):
            values[key] = str(today + timedelta(days=int(values[key][1:])))
    with pytest.raises(error), committed() as uow:
        waitlist.join(uow, new_caller(), WaitlistCreate.model_validate(values))
    assert sql.run("SELECT count(*) FROM waitlist_entries") == [[0]]
    assert sql.run("SELECT count(*) FROM waitlist_events") == [[0]]


def test_a_range_backwards_is_refused_by_the_model() -> None:
    with pytest.raises(ValueError, match="'to' must not be before 'from'"):
        WaitlistCreate.model_validate({"doctor_id": str(uuid.uuid4()), "from": "2030-01-05", "to": "2030-01-01"})


def test_too_many_entries_even_at_once(sql: Conn) -> None:
    doctor = new_doctor(sql)
    patient = new_caller()
    today = date.today()
    results = at_once([lambda: join(patient, doctor, (today, today + timedelta(days=5))) for _ in range(8)])
    assert sum(isinstance(r, uuid.UUID) for r in results) == 3
    assert all(isinstance(r, (uuid.UUID, TooManyEntries)) for r in results)
    assert sql.run("SELECT count(*) FROM waitlist_entries") == [[3]]


def test_another_patients_entry_is_not_found(sql: Conn) -> None:
    day = Day(sql)
    cancel(day.holder, day.appointment)
    entry = entry_of(day.waiting[0]).id
    stranger = new_caller()
    for act in (waitlist.accept, waitlist.decline, waitlist.leave):
        with pytest.raises(NotFound), committed() as uow:
            act(uow, stranger, entry)  # type: ignore[operator]
    assert open_offers(sql, day.slot) == [day.waiting[0].id]


def test_a_slot_freed_while_its_only_match_held_another_offer_is_offered_when_that_ends(sql: Conn) -> None:
    """The bench found these left free: W matches A and B; A frees (held for W), B frees
    (W is busy with A's offer, nobody else waits: B stays free); W declines A: B is held
    for W in the same transaction."""
    doctor = new_doctor(sql)
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=3)
    a, b = new_slot(sql, doctor, start), new_slot(sql, doctor, start + timedelta(minutes=30))
    holders = [new_caller(), new_caller()]
    booked = [book(holders[0], a).id, book(holders[1], b).id]
    waiting = new_caller()
    join(waiting, doctor, (start.date(), start.date() + timedelta(days=1)))
    cancel(holders[0], booked[0])
    cancel(holders[1], booked[1])
    assert open_offers(sql, a) == [waiting.id] and open_offers(sql, b) == []
    with committed() as uow:
        waitlist.decline(uow, waiting, entry_of(waiting).id)
    assert open_offers(sql, a) == [] and open_offers(sql, b) == [waiting.id]


def test_the_sweep_offers_a_free_slot_to_a_waiting_entry_that_was_passed_over(sql: Conn) -> None:
    """Made by hand: a free slot, a waiting entry that matches it and was never offered it
    (the race of two changes at once leaves this); the sweep holds it for the entry."""
    doctor = new_doctor(sql)
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=3)
    slot = new_slot(sql, doctor, start)
    waiting = new_caller()
    join(waiting, doctor, (start.date(), start.date()))
    assert open_offers(sql, slot) == []
    assert waitlist.offer_passed_over() == 1
    assert open_offers(sql, slot) == [waiting.id]
    assert waitlist.offer_passed_over() == 0


def test_an_entry_ends_when_its_patient_books_that_doctor_in_the_range(sql: Conn) -> None:
    day = Day(sql, waiting=2)
    first, second = day.waiting
    other = new_slot(sql, day.doctor, day.start + timedelta(hours=2))
    book(first, other)  # booked directly, not through the waitlist
    assert entry_of(first).status == "BOOKED"
    cancel(day.holder, day.appointment)
    assert open_offers(sql, day.slot) == [second.id]


def test_joining_a_list_one_is_booked_on_in_the_range_is_refused_even_at_once_and_writes_nothing(sql: Conn) -> None:
    """The range is the doctor's days: an appointment at 23:00 New York time is on that
    day there (the next in UTC), and only a join naming that day is refused."""
    zone = ZoneInfo("America/New_York")
    doctor = new_doctor(sql, "America/New_York")
    day = date.today() + timedelta(days=3)
    slot = new_slot(sql, doctor, datetime.combine(day, clock(23), tzinfo=zone).astimezone(UTC))
    patient = new_caller()
    appointment = book(patient, slot).id
    results = at_once([lambda: join(patient, doctor, (day, day)) for _ in range(4)])
    assert all(isinstance(r, AlreadyBookedInRange) for r in results), results
    assert f"on {day} at 23:00 (America/New_York)" in str(results[0])
    assert sql.run("SELECT count(*) FROM waitlist_entries WHERE patient_id = :p", p=patient.id) == [[0]]
    assert sql.run(
        "SELECT count(*) FROM waitlist_events v JOIN waitlist_entries e ON e.id = v.entry_id WHERE e.patient_id = :p",
        p=patient.id,
    ) == [[0]]
    assert sql.run("SELECT count(*) FROM outbox WHERE payload->'entry'->>'patient_id' = :p", p=str(patient.id)) == [[0]]
    join(patient, doctor, (day + timedelta(days=1), day + timedelta(days=1)))  # the next day there: no appointment
    cancel(patient, appointment)
    join(patient, doctor, (day, day))
    assert sql.run("SELECT count(*) FROM waitlist_entries WHERE patient_id = :p", p=patient.id) == [[2]]
