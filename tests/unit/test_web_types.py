"""The web app's API types (web/src/api.gen.ts) are generated from infra/terraform/openapi.yaml
and must be current: after an API change, `python -m local.web_types` rewrites them, and the
app's type check (`make web`) shows every call that no longer fits."""

from __future__ import annotations

from local import web_types
from local.paths import OPENAPI


def test_the_apps_api_types_are_generated_from_the_current_openapi_document() -> None:
    assert web_types.TARGET.read_text() == web_types.generate(OPENAPI.read_text()), (
        "web/src/api.gen.ts is stale: run `.venv/bin/python -m local.web_types`"
    )


def test_every_operation_is_typed_with_its_parameters_body_and_answer() -> None:
    text = web_types.generate(OPENAPI.read_text())
    assert 'bookAppointment: ["POST", "/appointments"],' in text
    booking = 'headers: { "Idempotency-Key"?: string };\n    body: AppointmentCreate;\n    response: Appointment;'
    assert booking in text
    assert "query: { from: string; to: string; page_size?: number; page_token?: string };" in text
    assert "  reason?: string | null;" in text
    assert 'status: "BOOKED" | "CANCELLED" | "COMPLETED" | "NO_SHOW";' in text
    assert "preflight" not in text
