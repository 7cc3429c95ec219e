"""Patients and booking: POST/GET /patients, GET /patients/{id}, POST/GET /appointments,
GET /appointments/{id}[/audit]; the waitlist: POST/GET /waitlist, DELETE /waitlist/{id},
POST /waitlist/{id}/accept and /decline."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared import appointments, dispatch, patients, waitlist
from shared.asgi import serve
from shared.db import in_transaction, transaction
from shared.models import (
    AppointmentCreate,
    AppointmentQuery,
    PatientCreate,
    PatientQuery,
    WaitlistAnswer,
    WaitlistCreate,
    WaitlistQuery,
)
from shared.web import ApiRequest, Reply, Router

router = Router("book")


@router.route("POST", "/patients")
def register_patient(req: ApiRequest) -> Reply:
    caller, body = req.caller, req.body(PatientCreate)
    with transaction() as tx:
        patient, created = patients.register(tx, caller, body)
    return (201 if created else 200), patient


@router.route("GET", "/patients")
def find_patients(req: ApiRequest) -> Reply:
    caller, query = req.caller, req.query(PatientQuery)
    with transaction() as tx:
        return 200, patients.find(tx, caller, query)


@router.route("GET", "/patients/{patient_id}")
def get_patient(req: ApiRequest) -> Reply:
    caller = req.caller
    with transaction() as tx:
        return 200, patients.get(tx, caller, req.params["patient_id"])


@router.route("POST", "/appointments")
def book_appointment(req: ApiRequest) -> Reply:
    caller, body = req.caller, req.body(AppointmentCreate)
    key = appointments.idempotency_key(req.header("Idempotency-Key"))
    status, appointment, outbox_ids = in_transaction(
        lambda tx: appointments.once(tx, caller, key, body, None, 201, lambda: appointments.book(tx, caller, body))
    )
    dispatch.after_commit(outbox_ids)
    return status, appointment


@router.route("GET", "/appointments")
def list_appointments(req: ApiRequest) -> Reply:
    caller, query = req.caller, req.query(AppointmentQuery)
    with transaction() as tx:
        return 200, appointments.list_appointments(tx, caller, query)


@router.route("GET", "/appointments/{appointment_id}")
def get_appointment(req: ApiRequest) -> Reply:
    caller = req.caller
    with transaction() as tx:
        return 200, appointments.get_appointment(tx, caller, req.params["appointment_id"])


@router.route("GET", "/appointments/{appointment_id}/audit")
def get_audit(req: ApiRequest) -> Reply:
    caller = req.caller
    with transaction() as tx:
        return 200, appointments.get_audit(tx, caller, req.params["appointment_id"])


@router.route("POST", "/waitlist")
def join_waitlist(req: ApiRequest) -> Reply:
    caller, body = req.caller, req.body(WaitlistCreate)
    entry, outbox_ids = in_transaction(lambda tx: waitlist.join(tx, caller, body))
    dispatch.after_commit(outbox_ids)
    return 201, entry


@router.route("GET", "/waitlist")
def list_waitlist(req: ApiRequest) -> Reply:
    caller, query = req.caller, req.query(WaitlistQuery)
    with transaction() as tx:
        return 200, waitlist.list_entries(tx, caller, query)


@router.route("DELETE", "/waitlist/{entry_id}")
def leave_waitlist(req: ApiRequest) -> Reply:
    caller, entry_id = req.caller, req.params["entry_id"]
    outbox_ids = in_transaction(lambda tx: waitlist.leave(tx, caller, entry_id))
    dispatch.after_commit(outbox_ids)
    return 200, WaitlistAnswer(id=entry_id, status="LEFT")


@router.route("POST", "/waitlist/{entry_id}/accept")
def accept_offer(req: ApiRequest) -> Reply:
    caller, entry_id = req.caller, req.params["entry_id"]
    appointment, outbox_ids = in_transaction(lambda tx: waitlist.accept(tx, caller, entry_id))
    dispatch.after_commit(outbox_ids)
    return 200, appointment


@router.route("POST", "/waitlist/{entry_id}/decline")
def decline_offer(req: ApiRequest) -> Reply:
    caller, entry_id = req.caller, req.params["entry_id"]
    outbox_ids = in_transaction(lambda tx: waitlist.decline(tx, caller, entry_id))
    dispatch.after_commit(outbox_ids)
    return 200, WaitlistAnswer(id=entry_id, status="WAITING")


@functions_framework.aio.http
async def book(request: Request) -> Response:
    return await serve(router, request)
