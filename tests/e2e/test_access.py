"""The access matrix: every role against every route of the API table, own vs others' data.

P is the patient who owns appointment A with doctor D; Q is another patient and E
another doctor. Another patient's or doctor's appointment is 404 (never 403), a
wrong role is 403, no token is 401. The table (checked against ACCESS below):

| route | anonymous | patient | other patient | doctor | other doctor | admin |
|---|---|---|---|---|---|---|
| GET /doctors | 200 | 200 | 200 | 200 | 200 | 200 |
| POST /doctors | 401 | 403 | 403 | 403 | 403 | 201 |
| GET /doctors/{D} | 200 | 200 | 200 | 200 | 200 | 200 |
| GET /doctors/{unknown} | 404 | 404 | 404 | 404 | 404 | 404 |
| GET /doctors/{D}/slots | 200 | 200 | 200 | 200 | 200 | 200 |
| POST /doctors/{D}/slots | 401 | 403 | 403 | 201 | 403 | 201 |
| POST /patients (self) | 401 | 200 | 200 | 403 | 403 | 422 |
| POST /patients {user_id: new} | 401 | 403 | 403 | 403 | 403 | 201 |
| POST /appointments (self) | 401 | 201 | 201 | 403 | 403 | 422 |
| POST /appointments {patient_id: P} | 401 | 201 | 403 | 403 | 403 | 201 |
| GET /appointments (is A listed?) | 401 | 200 yes | 200 no | 200 yes | 200 no | 200 yes |
| GET /appointments {patient_id: P} (is A listed?) | 401 | 200 yes | 403 | 200 yes | 200 no | 200 yes |
| GET /patients {q: P's email} (is P listed?) | 401 | 403 | 403 | 403 | 403 | 200 yes |
| GET /patients/{P} | 401 | 200 | 404 | 200 | 404 | 200 |
| GET /appointments/{A} | 401 | 200 | 404 | 200 | 404 | 200 |
| GET /appointments/{unknown} | 401 | 404 | 404 | 404 | 404 | 404 |
| GET /appointments/{A}/audit | 401 | 200 | 404 | 200 | 404 | 200 |
| PATCH /appointments/{A} CANCELLED | 401 | 200 | 404 | 200 | 404 | 200 |
| PATCH /appointments/{A} COMPLETED (started) | 401 | 403 | 404 | 200 | 404 | 200 |
| PATCH /appointments/{A} NO_SHOW (started) | 401 | 403 | 404 | 200 | 404 | 200 |
| PATCH /appointments/{A} {slot_id} (move) | 401 | 200 | 404 | 200 | 404 | 200 |

Identity comes only from the gateway: a client-sent X-Apigateway-Api-Userinfo header is
stripped by the gateway, so forging it (with or without a valid token) grants nothing.
"""

from __future__ import annotations

import base64
import itertools
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
import requests

from local.keys import make_token
from local.stack import Stack
from tests.e2e.booking_support import assert_problem, book, database, register, started_appointment
from tests.e2e.client import Api, Caller

ROLES = ("anonymous", "patient", "other patient", "doctor", "other doctor", "admin")


class Anonymous:
    """No Authorization header at all."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.api.base + path, timeout=30, **kwargs)


Client = Caller | Anonymous


@dataclass
class World:
    api: Api
    db_url: str
    doctor: Caller
    other_doctor: Caller
    patient: Caller
    other_patient: Caller
    admin: Caller
    appointment: str
    slots: Iterator[str]
    started_offsets: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    anonymous: Anonymous | None = None

    def caller(self, role: str) -> Client:
        return {
            "anonymous": self.anonymous,
            "patient": self.patient,
            "other patient": self.other_patient,
            "doctor": self.doctor,
            "other doctor": self.other_doctor,
            "admin": self.admin,
        }[role] or Anonymous(self.api)

    def fresh_appointment(self) -> str:
        return book(self.patient, next(self.slots))["id"]

    def started(self) -> str:
        # 35 minutes apart, so the 30-minute slots of one doctor and patient never overlap.
        return started_appointment(self.db_url, self.doctor, self.patient, 35 * next(self.started_offsets))


@pytest.fixture(scope="module")
def world(api: Api, stack: Stack) -> World:
    doctor, other_doctor = api.doctor(), api.doctor()
    patient, other_patient = api.patient(), api.patient()
    register(patient)
    register(other_patient)
    day = date.today() + timedelta(days=21)
    pool = [s["id"] for s in api.publish(doctor, day, "08:00", "18:00", 5)]
    slots = iter(pool)
    appointment = book(patient, next(slots))["id"]
    return World(
        api,
        stack.database_url or "",
        doctor,
        other_doctor,
        patient,
        other_patient,
        api.admin(),
        appointment,
        slots,
        anonymous=Anonymous(api),
    )


def send(client: Client, method: str, path: str, body: Any = None) -> requests.Response:
    kwargs: dict[str, Any] = {} if body is None else {"json": body}
    return client.request(method, path, **kwargs)


# Each route: what it sends, given the world and the client. Stateful routes make their
# own fresh target so that every cell starts from the same state.
Request = Callable[[World, Client], requests.Response]


def new_doctor_body() -> dict[str, str]:
    ident = uuid.uuid4()
    return {
        "id": str(ident),
        "email": f"dr-{ident.hex[:12]}@example.com",
        "name": "Dr. New",
        "specialty": "Access",
        "timezone": "Europe/Berlin",
    }


_window_days = itertools.count(40)


def window_body() -> dict[str, Any]:
    day = date.today() + timedelta(days=next(_window_days))
    return {"date": day.isoformat(), "start": "09:00", "end": "10:00", "slot_minutes": 30}


def new_patient_body() -> dict[str, str]:
    ident = uuid.uuid4()
    return {"user_id": str(ident), "email": f"pt-{ident.hex[:12]}@example.com", "name": "New Patient"}


def list_appointments(w: World, c: Client) -> requests.Response:
    response = (
        send(c, "GET", "/appointments", None)
        if isinstance(c, Anonymous)
        else c.get(
            "/appointments",
            params={
                "status": "BOOKED",
                "page_size": 100,
                "from": (date.today() + timedelta(days=21)).isoformat(),
                "to": (date.today() + timedelta(days=21)).isoformat(),
            },
        )
    )
    return response


def list_patients_appointments(w: World, c: Client) -> requests.Response:
    return send(c, "GET", f"/appointments?patient_id={w.patient.id}&page_size=100&status=BOOKED")


def patch_started(status: str) -> Request:
    return lambda w, c: send(c, "PATCH", f"/appointments/{w.started()}", {"status": status})


ROUTES: dict[str, Request] = {
    "GET /doctors": lambda w, c: send(c, "GET", "/doctors"),
    "POST /doctors": lambda w, c: send(c, "POST", "/doctors", new_doctor_body()),
    "GET /doctors/{D}": lambda w, c: send(c, "GET", f"/doctors/{w.doctor.id}"),
    "GET /doctors/{unknown}": lambda w, c: send(c, "GET", f"/doctors/{uuid.uuid4()}"),
    "GET /doctors/{D}/slots": lambda w, c: send(
        c, "GET", f"/doctors/{w.doctor.id}/slots?from={date.today()}&to={date.today() + timedelta(days=30)}"
    ),
    "POST /doctors/{D}/slots": lambda w, c: send(c, "POST", f"/doctors/{w.doctor.id}/slots", window_body()),
    "POST /patients (self)": lambda w, c: send(c, "POST", "/patients", {"phone": "+49 30 123456"}),
    "POST /patients {user_id: new}": lambda w, c: send(c, "POST", "/patients", new_patient_body()),
    "POST /appointments (self)": lambda w, c: send(c, "POST", "/appointments", {"slot_id": next(w.slots)}),
    "POST /appointments {patient_id: P}": lambda w, c: send(
        c, "POST", "/appointments", {"slot_id": next(w.slots), "patient_id": str(w.patient.id)}
    ),
    "GET /appointments (is A listed?)": list_appointments,
    "GET /appointments {patient_id: P} (is A listed?)": list_patients_appointments,
    "GET /patients {q: P's email} (is P listed?)": lambda w, c: send(
        c, "GET", f"/patients?q={w.patient.email.upper()}"
    ),
    "GET /patients/{P}": lambda w, c: send(c, "GET", f"/patients/{w.patient.id}"),
    "GET /appointments/{A}": lambda w, c: send(c, "GET", f"/appointments/{w.appointment}"),
    "GET /appointments/{unknown}": lambda w, c: send(c, "GET", f"/appointments/{uuid.uuid4()}"),
    "GET /appointments/{A}/audit": lambda w, c: send(c, "GET", f"/appointments/{w.appointment}/audit"),
    "PATCH /appointments/{A} CANCELLED": lambda w, c: send(
        c, "PATCH", f"/appointments/{w.fresh_appointment()}", {"status": "CANCELLED"}
    ),
    "PATCH /appointments/{A} COMPLETED (started)": patch_started("COMPLETED"),
    "PATCH /appointments/{A} NO_SHOW (started)": patch_started("NO_SHOW"),
    "PATCH /appointments/{A} {slot_id} (move)": lambda w, c: send(
        c, "PATCH", f"/appointments/{w.fresh_appointment()}", {"slot_id": next(w.slots)}
    ),
}

# Expected status per role, in ROLES order; "200 yes"/"200 no": whether A is listed.
ACCESS: dict[str, tuple[str, ...]] = {
    "GET /doctors": ("200", "200", "200", "200", "200", "200"),
    "POST /doctors": ("401", "403", "403", "403", "403", "201"),
    "GET /doctors/{D}": ("200", "200", "200", "200", "200", "200"),
    "GET /doctors/{unknown}": ("404", "404", "404", "404", "404", "404"),
    "GET /doctors/{D}/slots": ("200", "200", "200", "200", "200", "200"),
    "POST /doctors/{D}/slots": ("401", "403", "403", "201", "403", "201"),
    "POST /patients (self)": ("401", "200", "200", "403", "403", "422"),
    "POST /patients {user_id: new}": ("401", "403", "403", "403", "403", "201"),
    "POST /appointments (self)": ("401", "201", "201", "403", "403", "422"),
    "POST /appointments {patient_id: P}": ("401", "201", "403", "403", "403", "201"),
    "GET /appointments (is A listed?)": ("401", "200 yes", "200 no", "200 yes", "200 no", "200 yes"),
    "GET /appointments {patient_id: P} (is A listed?)": ("401", "200 yes", "403", "200 yes", "200 no", "200 yes"),
    "GET /patients {q: P's email} (is P listed?)": ("401", "403", "403", "403", "403", "200 yes"),
    "GET /patients/{P}": ("401", "200", "404", "200", "404", "200"),
    "GET /appointments/{A}": ("401", "200", "404", "200", "404", "200"),
    "GET /appointments/{unknown}": ("401", "404", "404", "404", "404", "404"),
    "GET /appointments/{A}/audit": ("401", "200", "404", "200", "404", "200"),
    "PATCH /appointments/{A} CANCELLED": ("401", "200", "404", "200", "404", "200"),
    "PATCH /appointments/{A} COMPLETED (started)": ("401", "403", "404", "200", "404", "200"),
    "PATCH /appointments/{A} NO_SHOW (started)": ("401", "403", "404", "200", "404", "200"),
    "PATCH /appointments/{A} {slot_id} (move)": ("401", "200", "404", "200", "404", "200"),
}

CELLS = [(route, role, expected) for route, row in ACCESS.items() for role, expected in zip(ROLES, row, strict=True)]


def render_matrix() -> str:
    lines = ["| route | " + " | ".join(ROLES) + " |", "|---" * (len(ROLES) + 1) + "|"]
    lines += [f"| {route} | " + " | ".join(row) + " |" for route, row in ACCESS.items()]
    return "\n".join(lines)


def test_the_matrix_covers_every_route_and_the_docstring_shows_it() -> None:
    assert set(ROUTES) == set(ACCESS)
    methods_paths = {
        " ".join(name.split()[:2])
        .replace("{D}", "{id}")
        .replace("{A}", "{id}")
        .replace("{P}", "{id}")
        .replace("{unknown}", "{id}")
        for name in ROUTES
    }
    assert methods_paths == {
        "GET /doctors",
        "POST /doctors",
        "GET /doctors/{id}",
        "GET /doctors/{id}/slots",
        "POST /doctors/{id}/slots",
        "POST /patients",
        "GET /patients",
        "GET /patients/{id}",
        "POST /appointments",
        "GET /appointments",
        "GET /appointments/{id}",
        "GET /appointments/{id}/audit",
        "PATCH /appointments/{id}",
    }
    doc = sys.modules[__name__].__doc__ or ""
    assert render_matrix() in doc, "\n" + render_matrix()


@pytest.mark.parametrize(("route", "role", "expected"), CELLS, ids=[f"{r} | {o}" for r, o, _ in CELLS])
def test_access(world: World, route: str, role: str, expected: str) -> None:
    response = ROUTES[route](world, world.caller(role))
    status, _, listed = expected.partition(" ")
    assert response.status_code == int(status), (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert_problem(response, int(status))
        if status == "401":  # refused by the gateway, before any function
            assert response.headers.get("WWW-Authenticate") == "Bearer"
    if listed and route.startswith("GET /patients"):
        assert (str(world.patient.id) in [p["id"] for p in response.json()["items"]]) == (listed == "yes")
    elif listed:
        items = response.json()["items"]
        assert (world.appointment in [a["id"] for a in items]) == (listed == "yes")
        if role in ("patient", "other patient"):
            me = world.patient if role == "patient" else world.other_patient
            assert {a["patient_id"] for a in items} <= {str(me.id)}
        if role in ("doctor", "other doctor"):
            me = world.doctor if role == "doctor" else world.other_doctor
            assert {a["doctor_id"] for a in items} <= {str(me.id)}


def test_a_refused_change_changes_nothing(world: World) -> None:
    before = world.patient.get(f"/appointments/{world.appointment}").json()
    audit = world.patient.get(f"/appointments/{world.appointment}/audit").json()
    for client in (world.other_patient, world.other_doctor):
        assert_problem(client.patch(f"/appointments/{world.appointment}", {"status": "CANCELLED"}), 404)
        assert_problem(client.patch(f"/appointments/{world.appointment}", {"slot_id": next(world.slots)}), 404)
    assert world.patient.get(f"/appointments/{world.appointment}").json() == before
    assert world.patient.get(f"/appointments/{world.appointment}/audit").json() == audit


def test_404_for_others_looks_exactly_like_404_for_nothing(world: World) -> None:
    theirs = world.other_patient.get(f"/appointments/{world.appointment}")
    missing = world.other_patient.get(f"/appointments/{uuid.uuid4()}")
    assert (theirs.status_code, theirs.json()) == (missing.status_code, missing.json())


# -- identity only from the gateway --------------------------------------------------------


def userinfo(caller: Caller) -> str:
    claims = {
        "sub": str(caller.id),
        "email": caller.email,
        "name": caller.name,
        "role": caller.role,
        "email_verified": True,
        "iss": "https://clinic.local/issuer",
    }
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "name", ["X-Apigateway-Api-Userinfo", "x-apigateway-api-userinfo", "X-APIGATEWAY-API-USERINFO"]
)
def test_a_forged_identity_header_with_a_valid_token_grants_nothing(world: World, name: str) -> None:
    intruder = world.other_patient
    for victim in (world.patient, world.doctor, world.admin):
        forged = {name: userinfo(victim)}
        assert_problem(intruder.get(f"/appointments/{world.appointment}", headers=forged), 404)
        assert_problem(intruder.get(f"/appointments/{world.appointment}/audit", headers=forged), 404)
        assert_problem(
            intruder.patch(f"/appointments/{world.appointment}", {"status": "CANCELLED"}, headers=forged), 404
        )
        listed = intruder.get("/appointments", headers=forged, params={"page_size": 100})
        assert listed.status_code == 200
        assert {a["patient_id"] for a in listed.json()["items"]} <= {str(intruder.id)}
    # Claiming to be an admin does not make a patient one.
    assert_problem(intruder.post("/doctors", new_doctor_body(), headers={name: userinfo(world.admin)}), 403)
    # Nor does a patient become the doctor who may complete its own appointment.
    started = world.started()
    assert_problem(
        world.patient.patch(
            f"/appointments/{started}", {"status": "COMPLETED"}, headers={name: userinfo(world.doctor)}
        ),
        403,
    )
    assert world.patient.get(f"/appointments/{world.appointment}").json()["status"] == "BOOKED"


def test_a_forged_identity_header_without_a_token_is_401(world: World) -> None:
    anonymous = Anonymous(world.api)
    forged = {"X-Apigateway-Api-Userinfo": userinfo(world.admin)}
    for method, path in [
        ("GET", "/appointments"),
        ("GET", f"/appointments/{world.appointment}"),
        ("POST", "/doctors"),
        ("PATCH", f"/appointments/{world.appointment}"),
    ]:
        response = anonymous.request(method, path, headers=forged, json={} if method != "GET" else None)
        assert_problem(response, 401)


def test_an_invalid_token_is_401_even_with_a_forged_header(world: World, api: Api) -> None:
    forged = {"X-Apigateway-Api-Userinfo": userinfo(world.admin)}
    for authorization in (
        "Bearer not-a-token",
        f"Bearer {world.patient.token}x",
        "Basic YWRtaW46YWRtaW4=",
        f"Bearer {world.patient.token.rsplit('.', 1)[0]}.",
    ):
        response = requests.get(
            api.base + f"/appointments/{world.appointment}",
            timeout=30,
            headers={"Authorization": authorization, **forged},
        )
        assert_problem(response, 401)


def test_a_token_claiming_another_role_than_the_account_changes_nothing(api: Api, stack: Stack) -> None:
    """The users row says what an account is; a token whose role claim disagrees (or has
    none, which reads as patient) is refused on every change."""
    doctor = api.doctor()
    slot = api.publish(doctor, date.today() + timedelta(days=9), "09:00", "09:30", 30)[0]["id"]
    as_patient = Caller(api, "patient", doctor.id, doctor.email, doctor.name)
    body = assert_problem(as_patient.post("/appointments", {"slot_id": slot}), 403)
    assert "doctor account" in body["detail"]
    assert_problem(as_patient.post("/patients", {"phone": "+1 555 0100"}), 403)

    patient = api.patient()
    booked = patient.post("/appointments", {"slot_id": slot})
    assert booked.status_code == 201, booked.text
    as_admin = Caller(api, "admin", patient.id, patient.email, patient.name)
    assert_problem(as_admin.post("/doctors", new_doctor_body()), 403)
    assert_problem(as_admin.patch(f"/appointments/{booked.json()['id']}", {"status": "CANCELLED"}), 403)
    # Nor does it read as an admin: not the others' appointments, not even its own.
    other = api.patient()
    theirs = other.post("/appointments", {"slot_id": api.publish(doctor, date.today() + timedelta(days=10))[0]["id"]})
    assert theirs.status_code == 201, theirs.text
    for path in ("/appointments", f"/appointments/{theirs.json()['id']}", f"/appointments/{theirs.json()['id']}/audit"):
        assert_problem(as_admin.get(path), 403)
    assert_problem(as_patient.get("/appointments"), 403)
    as_doctor = Caller(api, "doctor", patient.id, patient.email, patient.name)
    # No doctor profile stands behind a patient account: there is no such doctor.
    assert_problem(as_doctor.post(f"/doctors/{patient.id}/slots", window_body()), 404)

    with database(stack.database_url or "") as sql:
        assert sql.run("SELECT count(*) FROM patients_profiles WHERE user_id = :id", id=doctor.id) == [[0]]
        assert sql.run("SELECT count(*) FROM appointments WHERE patient_id = :id", id=doctor.id) == [[0]]
        assert sql.run("SELECT status FROM appointments WHERE slot_id = CAST(:s AS uuid)", s=slot) == [["BOOKED"]]


def test_an_address_its_owner_has_not_verified_opens_no_account(api: Api, stack: Stack) -> None:
    """Someone signing up with another person's address, unverified, would otherwise lock
    its owner out (409 on every write later) and have the clinic write to them."""
    doctor = api.doctor()
    slot = api.publish(doctor, date.today() + timedelta(days=9), "09:00", "09:30", 30)[0]["id"]
    squatter = Caller(api, "patient", uuid.uuid4(), f"owner-{uuid.uuid4().hex[:8]}@example.com", "Not The Owner")
    unverified = make_token(
        "patient", squatter.id, squatter.email, squatter.name, state=api.state, extra={"email_verified": False}
    )
    squatter.session.headers["Authorization"] = f"Bearer {unverified}"
    for response in (
        squatter.post("/appointments", {"slot_id": slot}),
        squatter.post("/patients", {}),
        squatter.get("/appointments"),
    ):
        assert "verify your email address" in assert_problem(response, 403)["detail"]
    owner = Caller(api, "patient", uuid.uuid4(), squatter.email, "The Owner")
    booked = owner.post("/appointments", {"slot_id": slot})
    assert booked.status_code == 201, booked.text
    with database(stack.database_url or "") as sql:
        assert sql.run("SELECT count(*) FROM users WHERE id = :id", id=squatter.id) == [[0]]


def test_a_browser_on_another_origin_can_call_the_api(api: Api) -> None:
    """The local stack allows any origin (CORS_ALLOWED_ORIGINS=*), as a web client under
    development needs; production names its origins (Terraform cors_allowed_origins)."""
    origin = {"Origin": "http://localhost:5173"}
    asks = {**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    doctor = api.doctor()
    slot = api.publish(doctor, date.today() + timedelta(days=11), "09:00", "09:30", 30)[0]["id"]
    for path in ("/appointments", f"/appointments/{slot}", f"/doctors/{doctor.id}/slots"):
        preflight = requests.options(api.base + path, timeout=30, headers=asks)
        assert preflight.status_code == 204, preflight.text
        assert preflight.headers["Access-Control-Allow-Origin"] == "*"
        assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    patient = api.patient()
    booked = patient.post("/appointments", {"slot_id": slot}, headers=origin)
    assert booked.status_code == 201, booked.text
    assert booked.headers["Access-Control-Allow-Origin"] == "*"
    refused = patient.post("/appointments", {"slot_id": slot}, headers=origin)
    assert refused.status_code == 409 and refused.headers["Access-Control-Allow-Origin"] == "*"
