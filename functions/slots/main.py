"""Doctors and their slots: GET/POST /doctors, GET /doctors/{id}, GET/POST /doctors/{id}/slots."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared import dispatch, doctors
from shared.asgi import serve
from shared.db import in_transaction, transaction
from shared.models import AvailabilityWindow, DoctorCreate, DoctorQuery, SlotQuery
from shared.web import ApiRequest, Reply, Router

router = Router("slots")


@router.route("GET", "/doctors")
def list_doctors(req: ApiRequest) -> Reply:
    query = req.query(DoctorQuery)
    with transaction() as tx:
        return 200, doctors.list_doctors(tx, query)


@router.route("POST", "/doctors")
def create_doctor(req: ApiRequest) -> Reply:
    caller, body = req.caller, req.body(DoctorCreate)
    with transaction() as tx:
        return 201, doctors.create_doctor(tx, caller, body)


@router.route("GET", "/doctors/{doctor_id}")
def get_doctor(req: ApiRequest) -> Reply:
    with transaction() as tx:
        return 200, doctors.get_doctor(tx, req.params["doctor_id"])


@router.route("GET", "/doctors/{doctor_id}/slots")
def list_slots(req: ApiRequest) -> Reply:
    query = req.query(SlotQuery)
    with transaction() as tx:
        return 200, doctors.list_free_slots(tx, req.params["doctor_id"], query)


@router.route("POST", "/doctors/{doctor_id}/slots")
def publish_slots(req: ApiRequest) -> Reply:
    caller, window = req.caller, req.body(AvailabilityWindow)
    # Overlapping windows published at once may deadlock on the slots' exclusion constraint.
    published, outbox_ids = in_transaction(
        lambda tx: doctors.publish_slots_and_hold(tx, caller, req.params["doctor_id"], window)
    )
    dispatch.after_commit(outbox_ids)
    return 201, published


@functions_framework.aio.http
async def slots(request: Request) -> Response:
    return await serve(router, request)
