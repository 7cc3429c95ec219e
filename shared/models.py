"""Request and response bodies of the HTTP API (the OpenAPI document mirrors these)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from importlib.resources import files
from typing import Annotated, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from shared.enums import AppointmentStatus, AuditAction, StatusChange
from shared.text import LINE_BREAKING

Status = AppointmentStatus

# Text that PostgreSQL can store (no NUL) and a person would type (no control chars).
_PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
# Names and short texts go into email subjects and calendar lines: one line, so no
# control character at all (tabs and line breaks included), nor Unicode's line breaks.
_ONE_LINE = rf"^[^{LINE_BREAKING}]*$"
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=_ONE_LINE)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=_ONE_LINE)]


def _blank_is_none(value: str) -> str | None:
    return value or None  # a reason of only spaces is no reason, as a missing one


Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=1000, pattern=_PRINTABLE), AfterValidator(_blank_is_none)
]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()\-]{5,30}$")]
PageSize = Annotated[int, Field(ge=1, le=100)]


def _known_zone(name: str) -> str:
    # "Factory" is tzdata's placeholder for "not set yet" (it reads as -00): no clinic's zone.
    if name not in _zones() or name == "Factory":
        raise ValueError(f"unknown IANA time zone {name!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown IANA time zone {name!r}") from error
    return name


_ZONES: set[str] = set()


def _zones() -> set[str]:
    # The IANA names of the tzdata package (a runtime dependency), not whatever the
    # host's zoneinfo folder holds: `localtime` there is the server's own zone, which
    # differs between a laptop and Cloud Functions.
    if not _ZONES:
        _ZONES.update(files("tzdata").joinpath("zones").read_text().split())
    return _ZONES


def _sane_date(value: date) -> date:
    # Far-off dates would overflow date arithmetic; no clinic books in year 9999.
    if not date(1900, 1, 1) <= value <= date(2200, 12, 31):
        raise ValueError("date must be between 1900-01-01 and 2200-12-31")
    return value


def _sane_instant(value: datetime | date) -> datetime | date:
    day = value.date() if isinstance(value, datetime) else value
    _sane_date(day)
    return value


_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:\d{2})")


def _date_text(value: object) -> object:
    """A date is written YYYY-MM-DD: not a number of seconds, not a timestamp."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_TEXT.fullmatch(value):
        raise ValueError("give a date as YYYY-MM-DD")
    return value


def _date_or_timestamp_text(value: object) -> object:
    """YYYY-MM-DD or an RFC 3339 timestamp with its offset; pydantic alone would also
    read a number as seconds since 1970."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not (_DATE_TEXT.fullmatch(value) or _TIMESTAMP_TEXT.fullmatch(value)):
        hint = ""
        if isinstance(value, str) and _TIMESTAMP_TEXT.fullmatch(value.replace(" ", "+")):
            # A query string's unencoded "+" arrives as a space.
            hint = " (a '+' in a URL's query reads as a space: write it %2B)"
        raise ValueError("give a date (YYYY-MM-DD) or an RFC 3339 timestamp with its offset" + hint)
    return value


SaneDate = Annotated[date, BeforeValidator(_date_text), AfterValidator(_sane_date)]
Instant = Annotated[AwareDatetime | date, BeforeValidator(_date_or_timestamp_text), AfterValidator(_sane_instant)]

TimeZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_known_zone)]


def _not_nil(value: UUID) -> UUID:
    if value.int == 0:
        raise ValueError("the nil uuid is nobody's id")
    return value


UserId = Annotated[UUID, AfterValidator(_not_nil)]


class ApiModel(BaseModel):
    # Built on first use, not at import: a function then pays, once, only for the bodies
    # it serves (docs/benchmarks.md, cold import). pydantic 2.14 builds a model under a
    # lock, so the first requests of a new instance may arrive together.
    model_config = ConfigDict(defer_build=True)


class Strict(ApiModel):
    # Unknown fields are refused so a typo never silently does nothing.
    model_config = ConfigDict(extra="forbid", str_max_length=2000)


# -- doctors and slots --------------------------------------------------------------------


class DoctorQuery(Strict):
    specialty: ShortText | None = None
    page_size: PageSize = 50
    page_token: str | None = Field(default=None, max_length=500)


class DoctorCreate(Strict):
    id: UserId | None = Field(default=None, description="The doctor's identity-provider subject; generated if absent")
    email: EmailStr
    name: Name
    specialty: ShortText
    timezone: TimeZoneName


class Doctor(ApiModel):
    id: UUID
    name: str
    specialty: str
    timezone: str


class DoctorList(ApiModel):
    items: list[Doctor]
    next_page_token: str | None


_CLOCK_TEXT = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?")
_END_OF_DAY = re.compile(r"24:00(:00(\.0{1,6})?)?")


def _clock_text(value: object) -> object:
    """A window time is written HH:MM: not a number of seconds, not with an offset (it
    is the doctor's local time)."""
    if isinstance(value, time) and value.tzinfo is None:  # built in Python, not read from JSON
        return value
    if not isinstance(value, str) or not _CLOCK_TEXT.fullmatch(value):
        raise ValueError("give a local time in the doctor's zone as HH:MM, without offset")
    return value


def _end_clock_text(value: object) -> object:
    """As _clock_text; and ISO 8601's 24:00, the midnight that ends the day, is read as
    00:00, which as a window's end means the same (a window cannot end at the midnight
    that starts it)."""
    if isinstance(value, str) and _END_OF_DAY.fullmatch(value):
        return "00:00"
    return _clock_text(value)


class AvailabilityWindow(Strict):
    date: SaneDate
    start: Annotated[time, BeforeValidator(_clock_text)]
    end: Annotated[time, BeforeValidator(_end_clock_text)]
    slot_minutes: int = Field(ge=5, le=480)

    @model_validator(mode="after")
    def _ordered(self) -> AvailabilityWindow:
        if any(t.second or t.microsecond for t in (self.start, self.end)):
            raise ValueError("start and end are whole minutes (HH:MM)")
        return self


class SlotQuery(Strict):
    from_: SaneDate = Field(alias="from")
    to: SaneDate
    page_size: Annotated[int, Field(ge=1, le=1000)] = 500
    page_token: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _range(self) -> SlotQuery:
        if self.to < self.from_:
            raise ValueError("'to' must not be before 'from'")
        if (self.to - self.from_).days + 1 > 31:  # `to` is included: 31 days is from + 30
            raise ValueError("at most 31 days per request, 'from' and 'to' included")
        return self


class Slot(ApiModel):
    id: UUID
    doctor_id: UUID
    start_time: datetime
    end_time: datetime


class SlotList(ApiModel):
    items: list[Slot]
    next_page_token: str | None


class PublishedSlots(SlotList):
    """The slots a window created; `skipped` counts those that existed, overlapped or had
    started, `unused_minutes` what was left at the end too short for another slot."""

    skipped: int
    unused_minutes: int


# -- patients ---------------------------------------------------------------------------


class PatientCreate(Strict):
    user_id: UserId | None = Field(default=None, description="Admin only: register another user")
    email: EmailStr | None = Field(default=None, description="Admin only, with user_id")
    name: Name | None = Field(default=None, description="Admin only, with user_id")
    phone: Phone | None = None
    date_of_birth: SaneDate | None = None

    @model_validator(mode="after")
    def _born(self) -> PatientCreate:
        if self.date_of_birth is not None and not date(1900, 1, 1) <= self.date_of_birth <= date.today():
            raise ValueError("date_of_birth must be between 1900-01-01 and today")
        return self


class Patient(ApiModel):
    id: UUID
    email: str
    name: str
    phone: str | None
    date_of_birth: date | None


class PatientQuery(Strict):
    q: ShortText | None = Field(default=None, description="Part of the name or email address, any case")
    page_size: PageSize = 50
    page_token: str | None = Field(default=None, max_length=500)


class PatientList(ApiModel):
    items: list[Patient]
    next_page_token: str | None


# -- appointments -----------------------------------------------------------------------


class AppointmentCreate(Strict):
    slot_id: UUID
    reason: Reason | None = None
    patient_id: UserId | None = Field(default=None, description="Admin only: book for this patient")


class AppointmentChange(Strict):
    status: StatusChange | None = None
    slot_id: UUID | None = None
    reason: Reason | None = None

    @model_validator(mode="after")
    def _one_change(self) -> AppointmentChange:
        if (self.status is None) == (self.slot_id is None):
            raise ValueError("give either 'status' or 'slot_id'")
        return self


class AppointmentQuery(Strict):
    status: Status | None = None
    patient_id: UUID | None = Field(default=None, description="One patient's (admin, doctor; a patient: their own)")
    from_: Instant | None = Field(default=None, alias="from")
    to: Instant | None = Field(default=None, description="A date includes that whole day (UTC)")
    page_size: PageSize = 50
    page_token: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _range(self) -> AppointmentQuery:
        start, end = range_bound(self.from_), range_bound(self.to, end=True)
        # A date `to` ends with its day: the range is empty, and so a mistake, when that
        # day is over before `from` begins.
        if start is not None and end is not None and (end < start or (end == start and type(self.to) is date)):
            raise ValueError("'to' must not be before 'from'")
        return self


def range_bound(value: datetime | date | None, end: bool = False) -> datetime | None:
    """A bound of a listed range; a date is a UTC day, and `to` includes it whole. (Free
    slots read dates as the doctor's own days instead: one doctor has one zone, a list
    of appointments may span many.)"""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.combine(value + timedelta(days=1) if end else value, time(0), tzinfo=UTC)


class Appointment(ApiModel):
    id: UUID
    slot_id: UUID
    doctor_id: UUID
    patient_id: UUID
    start_time: datetime
    end_time: datetime
    status: Status
    reason: str | None
    created_at: datetime
    updated_at: datetime


class AppointmentList(ApiModel):
    items: list[Appointment]
    next_page_token: str | None


class AuditEntry(ApiModel):
    id: int
    appointment_id: UUID
    action: AuditAction
    from_status: Status | None
    to_status: Status
    actor_id: UUID | None
    reason: str | None
    details: dict[str, object]
    occurred_at: datetime


class AuditTrail(ApiModel):
    items: list[AuditEntry]


# -- the waitlist (decision 0013) --------------------------------------------------------

EntryStatus = Literal["WAITING", "OFFERED", "BOOKED", "LEFT", "ENDED"]


class WaitlistCreate(Strict):
    """Join a doctor's waitlist for the dates `from`..`to` (both included, the doctor's
    days), optionally only for slots starting between `start` and `end` (the doctor's
    local times of day)."""

    doctor_id: UUID
    from_: SaneDate = Field(alias="from")
    to: SaneDate
    start: Annotated[time, BeforeValidator(_clock_text)] | None = None
    end: Annotated[time, BeforeValidator(_end_clock_text)] | None = None
    patient_id: UserId | None = Field(default=None, description="Admin only: join for this patient")

    @model_validator(mode="after")
    def _range(self) -> WaitlistCreate:
        if self.to < self.from_:
            raise ValueError("'to' must not be before 'from'")
        if (self.start is None) != (self.end is None):
            raise ValueError("give both 'start' and 'end' times of day, or neither")
        if self.start is not None and self.end is not None:
            if any(t.second or t.microsecond for t in (self.start, self.end)):
                raise ValueError("start and end are whole minutes (HH:MM)")
            if self.end != time(0) and self.end <= self.start:
                raise ValueError("'end' must be after 'start'")
        return self


class WaitlistQuery(Strict):
    active: bool = Field(default=True, description="Only entries still waiting or offered")
    page_size: PageSize = 50
    page_token: str | None = Field(default=None, max_length=500)


class Offer(ApiModel):
    """The hold of a slot for this entry until `expires_at`."""

    id: UUID
    slot_id: UUID
    start_time: datetime
    end_time: datetime
    expires_at: datetime


class WaitlistEntry(ApiModel):
    id: UUID
    patient_id: UUID
    doctor_id: UUID
    range_start: datetime
    range_end: datetime
    start: time | None
    end: time | None
    status: EntryStatus
    created_at: datetime
    offer: Offer | None


class OfferAnswer(Strict):
    """Which offer an accept or decline answers: the one the patient was shown."""

    offer_id: UUID | None = Field(
        default=None, description="The offer shown; another (a later one on the same entry) is 409 offer-ended"
    )


class WaitlistAnswer(ApiModel):
    id: UUID
    status: Literal["WAITING", "LEFT"]


class WaitlistList(ApiModel):
    items: list[WaitlistEntry]
    next_page_token: str | None


class Problem(ApiModel):
    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, object]] | None = None
