"""Doctors and their slots: GET/POST /doctors, GET /doctors/{id}, GET/POST /doctors/{id}/slots."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared import doctors
from shared.asgi import serve
from shared.models import AvailabilityWindow, DoctorCreate, DoctorQuery, SlotQuery
from shared.unit_of_work import UnitOfWork
from shared.web import ApiRequest, Reply, Router

router = Router("slots")


@router.route("GET", "/doctors")
def list_doctors(req: ApiRequest, uow: UnitOfWork) -> Reply:
    return 200, doctors.list_doctors(uow, req.query(DoctorQuery))


@router.route("POST", "/doctors")
def create_doctor(req: ApiRequest, uow: UnitOfWork) -> Reply:
    return 201, doctors.create_doctor(uow, req.caller, req.body(DoctorCreate))


@router.route("GET", "/doctors/{doctor_id}")
def get_doctor(req: ApiRequest, uow: UnitOfWork) -> Reply:
    return 200, doctors.get_doctor(uow, req.params["doctor_id"])


@router.route("GET", "/doctors/{doctor_id}/slots")
def list_slots(req: ApiRequest, uow: UnitOfWork) -> Reply:
    return 200, doctors.list_free_slots(uow, req.params["doctor_id"], req.query(SlotQuery))


@router.route("POST", "/doctors/{doctor_id}/slots")
def publish_slots(req: ApiRequest, uow: UnitOfWork) -> Reply:
    window = req.body(AvailabilityWindow)
    return 201, doctors.publish_slots_and_hold(uow, req.caller, req.params["doctor_id"], window)


@functions_framework.aio.http
async def slots(request: Request) -> Response:
    return await serve(router, request)
