"""A table of bad inputs against the routes: each a 4xx problem+json, never a 5xx, and
nothing half-written in the database afterwards.

400 malformed (JSON, page tokens, repeated or NUL query parameters), 404 unknown or
non-uuid ids, 405 methods no route has, 413 bodies over 64 KiB, 414 URLs over 4000
characters, 415 content types other than application/json, 422 well-formed but invalid.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
import requests

from local.stack import Stack
from tests.e2e.booking_support import assert_problem, book, database, register
from tests.e2e.client import Api, Caller

UNKNOWN = "4b0f6a43-0000-4000-8000-000000000000"
TABLES = (
    "users",
    "doctors_profiles",
    "patients_profiles",
    "slots",
    "appointments",
    "audit_appointment",
    "idempotency_keys",
)
KIB = 1024
MIB = 1024 * KIB


def day(offset: int) -> str:
    return (date.today() + timedelta(days=offset)).isoformat()


def token(payload: object) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def window(**overrides: Any) -> dict[str, Any]:
    return {"date": day(30), "start": "09:00", "end": "10:00", "slot_minutes": 30, **overrides}


def doctor_body(**overrides: Any) -> dict[str, Any]:
    return {
        "email": f"bad-{uuid.uuid4().hex[:10]}@example.com",
        "name": "Dr. Bad",
        "specialty": "Input",
        "timezone": "Europe/Berlin",
        **overrides,
    }


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # {doctor} {slot} {appointment} are filled in
    expected: int
    role: str = "patient"
    body: Any = None  # sent as JSON
    raw: bytes | None = None  # sent as is, with content_type
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] | None = None


CASES = [
    # -- malformed bodies: 400 ------------------------------------------------------------
    Case("truncated JSON", "POST", "/appointments", 400, raw=b'{"slot_id": '),
    Case("not JSON at all", "POST", "/appointments", 400, raw=b"slot_id=1"),
    Case(
        "trailing comma",
        "POST",
        "/doctors/{doctor}/slots",
        400,
        role="admin",
        raw=b'{"date": "2027-01-01", "start": "09:00",}',
    ),
    Case("single quotes", "POST", "/patients", 400, raw=b"{'phone': '12345'}"),
    Case("empty body", "PATCH", "/appointments/{appointment}", 400, raw=b""),
    Case("invalid UTF-8", "POST", "/appointments", 400, raw=b'{"slot_id": "\xff\xfe"}'),
    Case("raw NUL byte in a string", "POST", "/appointments", 400, raw=b'{"slot_id": "{slot}", "reason": "a\x00b"}'),
    Case("raw NUL byte outside strings", "POST", "/patients", 400, raw=b'{\x00"phone": "12345"}'),
    Case("deeply nested arrays", "POST", "/appointments", 400, raw=b"[" * 60_000),
    Case("deeply nested objects", "PATCH", "/appointments/{appointment}", 400, raw=b'{"a":' * 12_000),
    # -- content types: 415 -----------------------------------------------------------------
    Case("text/plain", "POST", "/appointments", 415, raw=b'{"slot_id": "{slot}"}', content_type="text/plain"),
    Case("no content type", "POST", "/appointments", 415, raw=b'{"slot_id": "{slot}"}', content_type=None),
    Case(
        "form encoded",
        "PATCH",
        "/appointments/{appointment}",
        415,
        raw=b"status=CANCELLED",
        content_type="application/x-www-form-urlencoded",
    ),
    Case(
        "multipart",
        "POST",
        "/doctors",
        415,
        role="admin",
        raw=b"--x\r\n\r\n{}\r\n--x--",
        content_type="multipart/form-data; boundary=x",
    ),
    Case(
        "json-patch",
        "PATCH",
        "/appointments/{appointment}",
        415,
        raw=b'{"status": "CANCELLED"}',
        content_type="application/json-patch+json",
    ),
    Case("xml", "POST", "/patients", 415, raw=b"<patient/>", content_type="application/xml"),
    # -- sizes: 413 -------------------------------------------------------------------------
    Case("65 KiB reason", "POST", "/appointments", 413, body={"slot_id": "{slot}", "reason": "a" * 65 * KIB}),
    Case("1 MiB move", "PATCH", "/appointments/{appointment}", 413, body={"status": "CANCELLED", "reason": "x" * MIB}),
    Case("5 MiB doctor", "POST", "/doctors", 413, role="admin", body=doctor_body(name="n" * 5 * MIB)),
    Case(
        "8 MiB window", "POST", "/doctors/{doctor}/slots", 413, role="admin", raw=b'{"date": "' + b"9" * 8 * MIB + b'"}'
    ),
    # -- wrong types: 422 -------------------------------------------------------------------
    Case("slot_id a number", "POST", "/appointments", 422, body={"slot_id": 123}),
    Case("slot_id not a uuid", "POST", "/appointments", 422, body={"slot_id": "slot-1"}),
    Case("slot_id null", "POST", "/appointments", 422, body={"slot_id": None}),
    Case("reason an array", "POST", "/appointments", 422, body={"slot_id": "{slot}", "reason": ["a"]}),
    Case(
        "slot_minutes a word", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(slot_minutes="thirty")
    ),
    Case(
        "slot_minutes a fraction", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(slot_minutes=30.5)
    ),
    Case(
        "slot_minutes NaN",
        "POST",
        "/doctors/{doctor}/slots",
        422,
        role="admin",
        raw=b'{"date": "2027-01-01", "start": "09:00", "end": "10:00", "slot_minutes": NaN}',
    ),
    Case("date a number", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(date=20270101)),
    Case("status a number", "PATCH", "/appointments/{appointment}", 422, body={"status": 1}),
    Case("body an array", "POST", "/appointments", 422, body=[{"slot_id": "{slot}"}]),
    Case("body an empty array", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=[]),
    Case("body a string", "POST", "/patients", 422, body="me"),
    Case("body null", "PATCH", "/appointments/{appointment}", 422, raw=b"null"),
    Case("body a number", "POST", "/doctors", 422, role="admin", raw=b"42"),
    Case("date_of_birth not a date", "POST", "/patients", 422, body={"date_of_birth": "yesterday"}),
    Case("email not an email", "POST", "/doctors", 422, role="admin", body=doctor_body(email="not-an-email")),
    Case("phone letters", "POST", "/patients", 422, body={"phone": "call me"}),
    # -- missing and unknown fields: 422 --------------------------------------------------------
    Case("no slot_id", "POST", "/appointments", 422, body={}),
    Case(
        "no slot_minutes",
        "POST",
        "/doctors/{doctor}/slots",
        422,
        role="admin",
        body={"date": day(30), "start": "09:00", "end": "10:00"},
    ),
    Case(
        "doctor without name",
        "POST",
        "/doctors",
        422,
        role="admin",
        body={k: v for k, v in doctor_body().items() if k != "name"},
    ),
    Case(
        "unknown field status on booking", "POST", "/appointments", 422, body={"slot_id": "{slot}", "status": "BOOKED"}
    ),
    Case(
        "unknown field on change",
        "PATCH",
        "/appointments/{appointment}",
        422,
        body={"status": "CANCELLED", "patient_id": UNKNOWN},
    ),
    Case("unknown field on patient", "POST", "/patients", 422, body={"role": "admin"}),
    Case("misspelt field", "POST", "/doctors/{doctor}/slots", 422, role="admin", body={**window(), "slot_minute": 30}),
    # -- unknown and non-uuid ids: 404 ----------------------------------------------------------
    Case("unknown appointment", "GET", "/appointments/" + UNKNOWN, 404),
    Case("non-uuid appointment", "GET", "/appointments/42", 404),
    Case("non-uuid appointment audit", "GET", "/appointments/abc/audit", 404),
    Case("SQL in the id", "GET", "/appointments/1%27%20OR%20%271%27=%271", 404),
    Case("change an unknown appointment", "PATCH", "/appointments/" + UNKNOWN, 404, body={"status": "CANCELLED"}),
    Case("change a non-uuid appointment", "PATCH", "/appointments/not-a-uuid", 404, body={"status": "CANCELLED"}),
    Case("slots of an unknown doctor", "GET", f"/doctors/{UNKNOWN}/slots", 404, params={"from": day(1), "to": day(2)}),
    Case("slots of a non-uuid doctor", "GET", "/doctors/dr-who/slots", 404, params={"from": day(1), "to": day(2)}),
    Case("publish for an unknown doctor", "POST", f"/doctors/{UNKNOWN}/slots", 404, role="admin", body=window()),
    Case("book an unknown slot", "POST", "/appointments", 404, body={"slot_id": UNKNOWN}),
    Case("move to an unknown slot", "PATCH", "/appointments/{appointment}", 404, body={"slot_id": UNKNOWN}),
    Case(
        "book for an unknown patient",
        "POST",
        "/appointments",
        404,
        role="admin",
        body={"slot_id": "{slot}", "patient_id": UNKNOWN},
    ),
    Case("control character in an id", "GET", "/doctors/%1F/slots", 404, params={"from": day(1), "to": day(2)}),
    Case("non-ASCII id", "GET", "/appointments/%E2%82%AC", 404, content_type=None),
    Case("no such route", "GET", "/appointment", 404),
    Case("a path too deep", "GET", "/appointments/{appointment}/audit/1", 404),
    Case("a method no route has", "DELETE", "/appointments/{appointment}", 405, content_type=None),
    # -- NUL bytes and lone surrogates ----------------------------------------------------------
    Case("NUL in a JSON string", "POST", "/appointments", 422, body={"slot_id": "{slot}", "reason": "a\u0000b"}),
    Case("NUL in a name", "POST", "/doctors", 422, role="admin", body=doctor_body(name="Dr.\u0000Evil")),
    Case("NUL in a time zone", "POST", "/doctors", 422, role="admin", body=doctor_body(timezone="UTC\u0000")),
    Case("NUL in a query value", "GET", "/doctors?specialty=card%00iology", 400, content_type=None),
    Case("NUL in a query name", "GET", "/appointments?sta%00tus=BOOKED", 400, content_type=None),
    Case("lone surrogate in reason", "POST", "/appointments", 422, body={"slot_id": "{slot}", "reason": "\ud800"}),
    Case("lone surrogate in time zone", "POST", "/doctors", 422, role="admin", body=doctor_body(timezone="\udfff")),
    Case("lone surrogate as a key", "POST", "/patients", 422, raw=b'{"\\ud800": 1}'),
    Case("lone surrogate in a slot id", "POST", "/appointments", 422, raw=b'{"slot_id": "\\udc00"}'),
    # -- page tokens: 400 -------------------------------------------------------------------
    Case("garbage page token", "GET", "/appointments", 400, params={"page_token": "garbage!"}),
    Case(
        "page token of another list",
        "GET",
        "/appointments",
        400,
        content_type=None,
        params={"page_token": token({"after": "2027-01-01T00:00:00+00:00"})},
    ),
    Case(
        "page token with NUL",
        "GET",
        "/doctors",
        400,
        content_type=None,
        params={"page_token": token({"name": "a\u0000", "id": UNKNOWN})},
    ),
    Case(
        "page token with a lone surrogate",
        "GET",
        "/doctors",
        400,
        content_type=None,
        params={"page_token": token('{"name": "\\ud800", "id": "' + UNKNOWN + '"}')},
    ),
    Case(
        "page token in year 9999",
        "GET",
        "/appointments",
        400,
        content_type=None,
        params={"page_token": token({"start": "9999-12-31T23:59:59-05:00", "id": UNKNOWN})},
    ),
    Case(
        "page token in year 1",
        "GET",
        "/doctors/{doctor}/slots",
        400,
        content_type=None,
        params={"from": day(1), "to": day(2), "page_token": token({"after": "0001-01-01T00:00:00+01:00"})},
    ),
    Case(
        "page token not base64",
        "GET",
        "/doctors/{doctor}/slots",
        400,
        content_type=None,
        params={"from": day(1), "to": day(2), "page_token": "%%%"},
    ),
    Case("page token too long", "GET", "/appointments", 422, content_type=None, params={"page_token": "a" * 600}),
    # -- query ranges and sizes: 422, repeated parameters: 400 -----------------------------------
    Case(
        "slots from after to",
        "GET",
        "/doctors/{doctor}/slots",
        422,
        content_type=None,
        params={"from": day(5), "to": day(1)},
    ),
    Case(
        "slots over 31 days",
        "GET",
        "/doctors/{doctor}/slots",
        422,
        content_type=None,
        params={"from": day(1), "to": day(40)},
    ),
    Case(
        "slots over 31 days by one ('to' is included)",
        "GET",
        "/doctors/{doctor}/slots",
        422,
        content_type=None,
        params={"from": day(1), "to": day(32)},
    ),
    Case(
        "appointments to the day before from",
        "GET",
        "/appointments",
        422,
        content_type=None,
        params={"from": day(2), "to": day(1)},
    ),
    Case(
        "slots in year 9999",
        "GET",
        "/doctors/{doctor}/slots",
        422,
        content_type=None,
        params={"from": "9999-12-30", "to": "9999-12-31"},
    ),
    Case(
        "slots in year 1",
        "GET",
        "/doctors/{doctor}/slots",
        422,
        content_type=None,
        params={"from": "0001-01-01", "to": "0001-01-02"},
    ),
    Case("slots without a range", "GET", "/doctors/{doctor}/slots", 422, content_type=None),
    Case(
        "slots with a datetime range",
        "GET",
        "/doctors/{doctor}/slots",
        422,
        content_type=None,
        params={"from": "tomorrow", "to": day(2)},
    ),
    Case("appointments from 9999", "GET", "/appointments", 422, content_type=None, params={"from": "9999-12-31"}),
    Case(
        "appointments to year 1", "GET", "/appointments", 422, content_type=None, params={"to": "0001-01-01T00:00:00Z"}
    ),
    Case(
        "appointments from after to",
        "GET",
        "/appointments",
        422,
        content_type=None,
        params={"from": "2027-02-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"},
    ),
    Case(
        "appointments from a naive time",
        "GET",
        "/appointments",
        422,
        content_type=None,
        params={"from": "2027-01-01T10:00:00"},
    ),
    Case("status lower case", "GET", "/appointments", 422, content_type=None, params={"status": "booked"}),
    Case("unknown query parameter", "GET", "/appointments", 422, content_type=None, params={"doctor": UNKNOWN}),
    Case("page_size 0", "GET", "/appointments", 422, content_type=None, params={"page_size": 0}),
    Case("page_size negative", "GET", "/doctors", 422, content_type=None, params={"page_size": -1}),
    Case(
        "page_size huge",
        "GET",
        "/doctors/{doctor}/slots",
        422,
        content_type=None,
        params={"from": day(1), "to": day(2), "page_size": 10**30},
    ),
    Case("page_size a word", "GET", "/appointments", 422, content_type=None, params={"page_size": "all"}),
    Case("page_size a fraction", "GET", "/doctors", 422, content_type=None, params={"page_size": 1.5}),
    Case("repeated status", "GET", "/appointments?status=BOOKED&status=CANCELLED", 400, content_type=None),
    Case("repeated page_size", "GET", "/doctors?page_size=1&page_size=2", 400, content_type=None),
    Case(
        "repeated from",
        "GET",
        "/doctors/{doctor}/slots?from=" + day(1) + "&from=" + day(2) + "&to=" + day(3),
        400,
        content_type=None,
    ),
    Case("specialty too long", "GET", "/doctors", 422, content_type=None, params={"specialty": "s" * 3000}),
    Case(
        "query string of 5000 characters", "GET", "/doctors", 414, content_type=None, params={"specialty": "s" * 5000}
    ),
    Case("path of 6000 characters", "GET", "/appointments/" + "a" * 6000, 414, content_type=None),
    # -- time zones and windows: 422 -------------------------------------------------------------
    Case("unknown time zone", "POST", "/doctors", 422, role="admin", body=doctor_body(timezone="Mars/Olympus")),
    Case("path as a time zone", "POST", "/doctors", 422, role="admin", body=doctor_body(timezone="../../etc/passwd")),
    Case("empty time zone", "POST", "/doctors", 422, role="admin", body=doctor_body(timezone="")),
    Case("host-local time zone", "POST", "/doctors", 422, role="admin", body=doctor_body(timezone="localtime")),
    Case("offset as a time zone", "POST", "/doctors", 422, role="admin", body=doctor_body(timezone="+02:00")),
    Case("slot_minutes 0", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(slot_minutes=0)),
    Case("slot_minutes negative", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(slot_minutes=-30)),
    Case("slot_minutes huge", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(slot_minutes=10**12)),
    Case(
        "end before start",
        "POST",
        "/doctors/{doctor}/slots",
        422,
        role="admin",
        body=window(start="12:00", end="09:00"),
    ),
    Case("empty window", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(start="09:00", end="09:00")),
    Case("window shorter than a slot", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(end="09:20")),
    Case("hour 25", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(start="25:00")),
    Case("time with an offset", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(start="09:00+02:00")),
    Case("window in the past", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(date="2020-01-06")),
    Case("window in year 9999", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(date="9999-12-31")),
    Case("window start seconds", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(start="09:00:30")),
    Case("window end fraction", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(end="10:00:00.5")),
    Case("window date as a number", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(date=1798761600)),
    Case("doctor in zone Factory", "POST", "/doctors", 422, role="admin", body=doctor_body(timezone="Factory")),
    Case(
        "doctor name with a line break",
        "POST",
        "/doctors",
        422,
        role="admin",
        body=doctor_body(name="Dr. Evil\r\nBcc: spy@evil.example"),
    ),
    Case("specialty with a tab", "POST", "/doctors", 422, role="admin", body=doctor_body(specialty="GP\tX")),
    Case(
        "patient name with a Unicode line separator",
        "POST",
        "/patients",
        422,
        role="admin",
        body={"user_id": str(uuid.uuid4()), "email": "sep@example.com", "name": "Eve\u2028Bcc: x"},
    ),
    Case(
        "doctor with the nil uuid",
        "POST",
        "/doctors",
        422,
        role="admin",
        body=doctor_body(id="00000000-0000-0000-0000-000000000000"),
    ),
    Case(
        "patient with the nil uuid",
        "POST",
        "/patients",
        422,
        role="admin",
        body={"user_id": "00000000-0000-0000-0000-000000000000", "email": "nil@example.com", "name": "Nil"},
    ),
    Case(
        "a booking for the nil uuid",
        "POST",
        "/appointments",
        422,
        role="admin",
        body={"slot_id": "{slot}", "patient_id": "00000000-0000-0000-0000-000000000000"},
    ),
    Case("appointments from a number", "GET", "/appointments", 422, content_type=None, params={"from": "20261127"}),
    Case(
        "appointments from a timestamp without offset",
        "GET",
        "/appointments",
        422,
        content_type=None,
        params={"from": "2026-12-01T00:00:00"},
    ),
    Case(
        "slots from a timestamp",
        "GET",
        "/doctors/{doctor}/slots",
        422,
        content_type=None,
        params={"from": "2026-12-01T00:00:00", "to": "2026-12-02"},
    ),
    Case("window in year 1", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(date="0001-01-01")),
    Case("window two years ahead", "POST", "/doctors/{doctor}/slots", 422, role="admin", body=window(date=day(800))),
    Case("born in 1800", "POST", "/patients", 422, body={"date_of_birth": "1800-01-01"}),
    Case("born tomorrow", "POST", "/patients", 422, body={"date_of_birth": day(1)}),
    # -- Idempotency-Key: 422 ------------------------------------------------------------------
    Case(
        "empty Idempotency-Key",
        "POST",
        "/appointments",
        422,
        body={"slot_id": "{slot}"},
        headers={"Idempotency-Key": ""},
    ),
    Case(
        "256-character Idempotency-Key",
        "POST",
        "/appointments",
        422,
        body={"slot_id": "{slot}"},
        headers={"Idempotency-Key": "k" * 256},
    ),
    Case(
        "300-character Idempotency-Key",
        "POST",
        "/appointments",
        422,
        body={"slot_id": "{slot}"},
        headers={"Idempotency-Key": "k" * 300},
    ),
    Case(
        "non-ASCII Idempotency-Key",
        "POST",
        "/appointments",
        422,
        body={"slot_id": "{slot}"},
        headers={"Idempotency-Key": "clé"},
    ),
    # -- PATCH bodies: 422 ---------------------------------------------------------------------
    Case(
        "both status and slot_id",
        "PATCH",
        "/appointments/{appointment}",
        422,
        body={"status": "CANCELLED", "slot_id": "{slot}"},
    ),
    Case("neither status nor slot_id", "PATCH", "/appointments/{appointment}", 422, body={"reason": "why not"}),
    Case("empty change", "PATCH", "/appointments/{appointment}", 422, body={}),
    Case("status BOOKED", "PATCH", "/appointments/{appointment}", 422, body={"status": "BOOKED"}),
    Case("status in lower case", "PATCH", "/appointments/{appointment}", 422, body={"status": "cancelled"}),
    Case("status DELETED", "PATCH", "/appointments/{appointment}", 422, body={"status": "DELETED"}),
    Case(
        "status null with slot null",
        "PATCH",
        "/appointments/{appointment}",
        422,
        body={"status": None, "slot_id": None},
    ),
    # -- extremely long strings: 422 -----------------------------------------------------------
    Case("reason of 1001 characters", "POST", "/appointments", 422, body={"slot_id": "{slot}", "reason": "r" * 1001}),
    Case("name of 201 characters", "POST", "/doctors", 422, role="admin", body=doctor_body(name="n" * 201)),
    Case(
        "specialty of 60000 characters", "POST", "/doctors", 422, role="admin", body=doctor_body(specialty="s" * 60_000)
    ),
    Case(
        "email of 60000 characters",
        "POST",
        "/doctors",
        422,
        role="admin",
        body=doctor_body(email="e" * 60_000 + "@example.com"),
    ),
    Case("phone of 1000 digits", "POST", "/patients", 422, body={"phone": "1" * 1000}),
    Case(
        "cancel reason of 5000 characters",
        "PATCH",
        "/appointments/{appointment}",
        422,
        body={"status": "CANCELLED", "reason": "r" * 5000},
    ),
]


@dataclass
class Context:
    api: Api
    callers: dict[str, Caller]
    values: dict[str, str]
    counts_before: dict[str, int]


def counts(url: str) -> dict[str, int]:
    with database(url) as conn:
        return {table: int(conn.run(f"SELECT count(*) FROM {table}")[0][0]) for table in TABLES}


@pytest.fixture(scope="module")
def context(api: Api, stack: Stack) -> Context:
    doctor = api.doctor()
    patient, admin = api.patient(), api.admin()
    register(patient)
    slots = api.publish(doctor, date.today() + timedelta(days=25), "09:00", "10:00", 30)
    appointment = book(patient, slots[0]["id"])
    # The admin's user row exists before the table runs.
    assert admin.get("/appointments", params={"page_size": 1}).status_code == 200
    values = {"doctor": str(doctor.id), "slot": slots[1]["id"], "appointment": appointment["id"]}
    return Context(
        api, {"patient": patient, "admin": admin, "doctor": doctor}, values, counts(stack.database_url or "")
    )


def fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def fill_json(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return fill(value, values)
    if isinstance(value, list):
        return [fill_json(v, values) for v in value]
    if isinstance(value, dict):
        return {k: fill_json(v, values) for k, v in value.items()}
    return value


def send(context: Context, case: Case) -> requests.Response:
    caller = context.callers[case.role]
    headers = dict(case.headers)
    data: bytes | None = None
    if case.raw is not None:
        data = fill(case.raw.decode("latin-1"), context.values).encode("latin-1")
    elif case.body is not None:
        # ensure_ascii keeps lone surrogates as \\ud800 escapes, as a client library would send them.
        data = json.dumps(fill_json(case.body, context.values)).encode()
    if case.content_type is not None and data is not None:
        headers["Content-Type"] = case.content_type
    return caller.session.request(
        case.method,
        context.api.base + fill(case.path, context.values),
        params=case.params,
        data=data,
        headers=headers,
        timeout=60,
    )


def test_the_table_is_large_and_names_every_expected_status() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.expected for c in CASES} == {400, 404, 405, 413, 414, 415, 422}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(context: Context, case: Case) -> None:
    response = send(context, case)
    assert response.status_code < 500, (response.status_code, response.text[:300])
    body = assert_problem(response, case.expected)
    assert body["type"].startswith("/problems/")
    if case.expected == 422 and case.body is not None and "errors" in body:
        assert all({"loc", "msg", "type"} <= set(e) for e in body["errors"])


def test_nothing_was_half_written(context: Context, stack: Stack) -> None:
    assert counts(stack.database_url or "") == context.counts_before
    appointment = context.callers["patient"].get(f"/appointments/{context.values['appointment']}").json()
    assert appointment["status"] == "BOOKED"
    audit = context.callers["patient"].get(f"/appointments/{context.values['appointment']}/audit").json()
    assert [e["action"] for e in audit["items"]] == ["BOOKED"]
