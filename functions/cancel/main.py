"""Changing an appointment: PATCH /appointments/{id} (cancel, complete, no-show, move)."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared import appointments, dispatch
from shared.asgi import serve
from shared.db import in_transaction
from shared.models import AppointmentChange
from shared.web import ApiRequest, Reply, Router

router = Router("cancel")


@router.route("PATCH", "/appointments/{appointment_id}")
def change_appointment(req: ApiRequest) -> Reply:
    caller, body, appointment_id = req.caller, req.body(AppointmentChange), req.params["appointment_id"]
    # A phone that lost the answer to a cancel or a move sends it again: with the same
    # key it gets the first answer, not a 409 about its own change.
    key = appointments.idempotency_key(req.header("Idempotency-Key"))
    status, appointment, outbox_ids = in_transaction(
        lambda tx: appointments.once(
            tx, caller, key, body, appointment_id, 200, lambda: appointments.change(tx, caller, appointment_id, body)
        )
    )
    dispatch.after_commit(outbox_ids)
    return status, appointment


@functions_framework.aio.http
async def cancel(request: Request) -> Response:
    return await serve(router, request)
