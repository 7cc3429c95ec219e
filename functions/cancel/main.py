"""Changing an appointment: PATCH /appointments/{id} (cancel, complete, no-show, move)."""

import functions_framework

from shared import appointments, dispatch
from shared.db import transaction
from shared.models import AppointmentChange
from shared.web import ApiRequest, Reply, Router

router = Router("cancel")


@router.route("PATCH", "/appointments/{appointment_id}")
def change_appointment(req: ApiRequest) -> Reply:
    caller, body = req.caller, req.body(AppointmentChange)
    with transaction() as tx:
        appointment, outbox_ids = appointments.change(tx, caller, req.params["appointment_id"], body)
    dispatch.after_commit(outbox_ids)
    return 200, appointment


@functions_framework.http
def cancel(request):  # type: ignore[no-untyped-def]
    return router(request)
