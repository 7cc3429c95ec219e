"""A property-based fuzz of the OpenAPI document (infra/terraform/openapi.yaml) against the
running gateway: valid and invalid requests generated from every operation, with a valid
admin token, must never get a 5xx. Bounded to a few hundred cases so `make test` stays fast."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import BaseSchema, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from local.gateway import render
from local.paths import OPENAPI
from local.stack import Stack
from tests.e2e.client import Api, Caller

# Per operation, valid and invalid requests together: 39 operations (18, a HEAD per GET, and
# a CORS preflight per path) x 25 = 975 cases at most; a preflight has little to vary, so it
# gets a few.
EXAMPLES = 25
# (operation, status) of every generated request, for the coverage check below.
SENT: list[tuple[str, int]] = []


def rendered(stack: Stack) -> dict[str, Any]:
    values = {name: stack.url(name) for name in ("slots", "book", "cancel")}
    values = {f"{name}_url": url for name, url in values.items()} | {
        "jwt_issuer": "https://clinic.local/issuer",
        "jwks_uri": "file:///jwks.json",
        "jwt_audience": "clinic-local",
    }
    return render(OPENAPI.read_text(), values)


@pytest.fixture(scope="module")
def admin(api: Api) -> Caller:
    caller = api.admin()
    assert caller.get("/appointments", params={"page_size": 1}).status_code == 200
    return caller


def loaded(stack: Stack) -> BaseSchema:
    schema = schemathesis.openapi.from_dict(rendered(stack))
    schema.config.update(base_url=stack.url("gateway"))
    return schema


@pytest.fixture
def clinic_api(stack: Stack) -> BaseSchema:
    schema = loaded(stack)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    # The schema's own examples and the random (Hypothesis) cases, bounded by max_examples
    # below. Schemathesis 4's coverage phase would add its own cases on top of that bound.
    schema.config.phases.update(phases=["examples", "fuzzing"])
    return schema


schema = schemathesis.pytest.from_fixture("clinic_api")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
def test_no_server_errors(case: Any, admin: Caller) -> None:
    response = case.call(session=admin.session, headers={"Authorization": f"Bearer {admin.token}"}, timeout=30)
    SENT.append((f"{case.method.upper()} {case.path}", response.status_code))
    case.validate_response(response, checks=[not_a_server_error])


def test_the_fuzz_reached_every_operation(stack: Stack) -> None:
    """Runs after the fuzz (pytest keeps file order): it sent a few hundred requests to
    every operation, some accepted and some refused."""
    operations = set()
    for result in loaded(stack).get_all_operations():
        assert isinstance(result, Ok), result
        operations.add(f"{result.ok().method.upper()} {result.ok().path}")
    assert operations == {
        "GET /doctors",
        "POST /doctors",
        "GET /doctors/{doctor_id}",
        "GET /doctors/{doctor_id}/slots",
        "POST /doctors/{doctor_id}/slots",
        "POST /patients",
        "GET /patients",
        "GET /patients/{patient_id}",
        "OPTIONS /patients/{patient_id}",
        "POST /appointments",
        "GET /appointments",
        "GET /appointments/{appointment_id}",
        "PATCH /appointments/{appointment_id}",
        "GET /appointments/{appointment_id}/audit",
        "POST /waitlist",
        "GET /waitlist",
        "DELETE /waitlist/{entry_id}",
        "POST /waitlist/{entry_id}/accept",
        "POST /waitlist/{entry_id}/decline",
        # HEAD, one per GET.
        "HEAD /doctors",
        "HEAD /doctors/{doctor_id}",
        "HEAD /doctors/{doctor_id}/slots",
        "HEAD /patients",
        "HEAD /patients/{patient_id}",
        "HEAD /appointments",
        "HEAD /appointments/{appointment_id}",
        "HEAD /appointments/{appointment_id}/audit",
        "HEAD /waitlist",
        # CORS preflights, one per path.
        "OPTIONS /doctors",
        "OPTIONS /doctors/{doctor_id}",
        "OPTIONS /doctors/{doctor_id}/slots",
        "OPTIONS /patients",
        "OPTIONS /appointments",
        "OPTIONS /appointments/{appointment_id}",
        "OPTIONS /appointments/{appointment_id}/audit",
        "OPTIONS /waitlist",
        "OPTIONS /waitlist/{entry_id}",
        "OPTIONS /waitlist/{entry_id}/accept",
        "OPTIONS /waitlist/{entry_id}/decline",
    }
    assert {operation for operation, _ in SENT} == operations
    assert 200 <= len(SENT) <= 975, len(SENT)
    statuses = {status for _, status in SENT}
    assert any(s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses), statuses
    assert requests.get(stack.url("gateway") + "/doctors", timeout=10).status_code == 200
