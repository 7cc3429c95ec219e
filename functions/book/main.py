"""Patients and booking: POST/GET /patients, GET /patients/{id}, POST/GET /appointments,
GET /appointments/{id}[/audit]; the waitlist: POST/GET /waitlist, DELETE /waitlist/{id},
POST /waitlist/{id}/accept and /decline."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared import appointments, patients, waitlist
from shared.asgi import serve
from shared.models import (
    AppointmentCreate,
    AppointmentQuery,
    OfferAnswer,
    PatientCreate,
    PatientQuery,
    WaitlistAnswer,
    WaitlistCreate,
    WaitlistQuery,
)
from shared.unit_of_work import UnitOfWork
from shared.web import ApiRequest, Reply, Router

router = Router("book")


@router.route("POST", "/patients")
def register_patient(req: ApiRequest, uow: UnitOfWork) -> Reply:
    patient, created = patients.register(uow, req.caller, req.body(PatientCreate))
    return (201 if created else 200), patient


@router.route("GET", "/patients")
def find_patients(req: ApiRequest, uow: UnitOfWork) -> Reply:
    return 200, patients.find(uow, req.caller, req.query(PatientQuery))


@router.route("GET", "/patients/{patient_id}")
def get_patient(req: ApiRequest, uow: UnitOfWork) -> Reply:
    return 200, patients.get(uow, req.caller, req.params["patient_id"])


@router.route("POST", "/appointments", idempotent=True)
def book_appointment(req: ApiRequest, uow: UnitOfWork) -> Reply:
    return 201, appointments.book(uow, req.caller, req.body(AppointmentCreate))


@router.route("GET", "/appointments")
def list_appointments(req: ApiRequest, uow: UnitOfWork) -> Reply:
    return 200, appointments.list_appointments(uow, req.caller, req.query(AppointmentQuery))


@router.route("GET", "/appointments/{appointment_id}")
def get_appointment(req: ApiRequest, uow: UnitOfWork) -> Reply:
    return 200, appointments.get_appointment(uow, req.caller, req.params["appointment_id"])


@router.route("GET", "/appointments/{appointment_id}/audit")
def get_audit(req: ApiRequest, uow: UnitOfWork) -> Reply:
    return 200, appointments.get_audit(uow, req.caller, req.params["appointment_id"])


@router.route("POST", "/waitlist")
def join_waitlist(req: ApiRequest, uow: UnitOfWork) -> Reply:
    return 201, waitlist.join(uow, req.caller, req.body(WaitlistCreate))


@router.route("GET", "/waitlist")
def list_waitlist(req: ApiRequest, uow: UnitOfWork) -> Reply:
    return 200, waitlist.list_entries(uow, req.caller, req.query(WaitlistQuery))


@router.route("DELETE", "/waitlist/{entry_id}")
def leave_waitlist(req: ApiRequest, uow: UnitOfWork) -> Reply:
    waitlist.leave(uow, req.caller, req.params["entry_id"])
    return 200, WaitlistAnswer(id=req.params["entry_id"], status="LEFT")


# The body (the offer shown) is optional, so clients from before it keep working.
@router.route("POST", "/waitlist/{entry_id}/accept", idempotent=True)
def accept_offer(req: ApiRequest, uow: UnitOfWork) -> Reply:
    return 200, waitlist.accept(uow, req.caller, req.params["entry_id"], req.optional_body(OfferAnswer).offer_id)


@router.route("POST", "/waitlist/{entry_id}/decline")
def decline_offer(req: ApiRequest, uow: UnitOfWork) -> Reply:
    waitlist.decline(uow, req.caller, req.params["entry_id"], req.optional_body(OfferAnswer).offer_id)
    return 200, WaitlistAnswer(id=req.params["entry_id"], status="WAITING")


@functions_framework.aio.http
async def book(request: Request) -> Response:
    return await serve(router, request)
