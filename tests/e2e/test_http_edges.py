"""Edges of HTTP through the gateway to the running functions: line breaks in a path, HEAD."""

from __future__ import annotations

import pytest

from tests.e2e.booking_support import assert_problem
from tests.e2e.client import Api

ID = "4b0f6a43-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    "path",
    [
        "/doctors/%0a%0a",
        "/doctors/%0A",
        f"/doctors/{ID}%0d%0a/slots?from=2030-01-01&to=2030-01-02",
        f"/appointments/{ID}%0d%0aX-Injected:%201",
        f"/appointments/{ID}%0a/audit",
    ],
)
def test_a_line_break_in_a_path_is_a_problem_json_404(api: Api, path: str) -> None:
    # functions-framework's own router answered these with a plain-text "Not Found".
    response = api.admin().get(path)
    assert assert_problem(response, 404)["type"] == "/problems/not-found"
    assert "X-Injected" not in response.headers


def test_head_is_get_without_the_content(api: Api) -> None:
    doctor = api.doctor()
    patient = api.patient()
    [slot] = api.publish(doctor, start="09:00", end="09:30")
    booked = patient.post("/appointments", {"slot_id": slot["id"]})
    assert booked.status_code == 201, booked.text
    appointment = booked.json()["id"]
    for caller, path in [
        (patient, f"/doctors/{doctor.id}"),
        (patient, f"/appointments/{appointment}"),
        (patient, f"/appointments/{appointment}/audit"),
        (doctor, "/appointments"),
    ]:
        got, head = caller.get(path), caller.request("HEAD", path)
        assert (head.status_code, head.content) == (got.status_code, b""), path
        assert head.headers["Content-Type"] == got.headers["Content-Type"] == "application/json"
        assert head.headers["Content-Length"] == str(len(got.content)), path
    # A problem: its status and headers, no content.
    missing = patient.request("HEAD", f"/appointments/{ID}")
    assert (missing.status_code, missing.content) == (404, b"")
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert int(missing.headers["Content-Length"]) > 0
