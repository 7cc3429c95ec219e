"""Changing an appointment: PATCH /appointments/{id} (cancel, complete, no-show, move)."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared import appointments
from shared.asgi import serve
from shared.models import AppointmentChange
from shared.unit_of_work import UnitOfWork
from shared.web import ApiRequest, Reply, Router

router = Router("cancel")


# Idempotent: a phone that lost the answer to a cancel or a move sends it again with the
# same key and gets the first answer, not a 409 about its own change.
@router.route("PATCH", "/appointments/{appointment_id}", idempotent=True)
def change_appointment(req: ApiRequest, uow: UnitOfWork) -> Reply:
    body = req.body(AppointmentChange)
    return 200, appointments.change(uow, req.caller, req.params["appointment_id"], body)


@functions_framework.aio.http
async def cancel(request: Request) -> Response:
    return await serve(router, request)
