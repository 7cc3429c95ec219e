"""infra/terraform/openapi.yaml cannot drift from the code: its definitions match the
pydantic models of shared/models.py (fields, required, enums, nullability, types, formats,
bounds), its query parameters match the query models, and every path+method is routed by
the function its x-google-backend names, and nothing else is."""

from __future__ import annotations

import importlib.util
import re
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

from local.gateway import render
from local.paths import OPENAPI, ROOT
from shared import models
from shared.web import Router

FUNCTIONS = ("slots", "book", "cancel", "notify")
VALUES = {f"{name}_url": f"https://{name}.functions.test" for name in FUNCTIONS} | {
    "jwt_issuer": "https://issuer.test",
    "jwks_uri": "https://issuer.test/jwks",
    "jwt_audience": "clinic",
}

# Each definition and the model it documents.
DEFINITIONS: dict[str, type[BaseModel]] = {
    "Problem": models.Problem,
    "Doctor": models.Doctor,
    "DoctorList": models.DoctorList,
    "DoctorCreate": models.DoctorCreate,
    "AvailabilityWindow": models.AvailabilityWindow,
    "Slot": models.Slot,
    "SlotList": models.SlotList,
    "PublishedSlots": models.PublishedSlots,
    "PatientCreate": models.PatientCreate,
    "Patient": models.Patient,
    "PatientList": models.PatientList,
    "AppointmentCreate": models.AppointmentCreate,
    "AppointmentChange": models.AppointmentChange,
    "Appointment": models.Appointment,
    "AppointmentList": models.AppointmentList,
    "AuditEntry": models.AuditEntry,
    "AuditTrail": models.AuditTrail,
    "WaitlistCreate": models.WaitlistCreate,
    "Offer": models.Offer,
    "WaitlistEntry": models.WaitlistEntry,
    "WaitlistList": models.WaitlistList,
    "WaitlistAnswer": models.WaitlistAnswer,
    "OfferAnswer": models.OfferAnswer,
}
STRICT_MAX = models.Strict.model_config["str_max_length"]
REQUESTS = {
    "DoctorCreate",
    "AvailabilityWindow",
    "PatientCreate",
    "AppointmentCreate",
    "AppointmentChange",
    "WaitlistCreate",
    "OfferAnswer",
}

# operationId -> (query model, body model, success status -> response definition)
OPERATIONS: dict[str, tuple[type[BaseModel] | None, str | None, dict[str, str]]] = {
    "listDoctors": (models.DoctorQuery, None, {"200": "DoctorList"}),
    "createDoctor": (None, "DoctorCreate", {"201": "Doctor"}),
    "getDoctor": (None, None, {"200": "Doctor"}),
    "listFreeSlots": (models.SlotQuery, None, {"200": "SlotList"}),
    "publishSlots": (None, "AvailabilityWindow", {"201": "PublishedSlots"}),
    "registerPatient": (None, "PatientCreate", {"200": "Patient", "201": "Patient"}),
    "findPatients": (models.PatientQuery, None, {"200": "PatientList"}),
    "getPatient": (None, None, {"200": "Patient"}),
    "bookAppointment": (None, "AppointmentCreate", {"201": "Appointment"}),
    "listAppointments": (models.AppointmentQuery, None, {"200": "AppointmentList"}),
    "getAppointment": (None, None, {"200": "Appointment"}),
    "changeAppointment": (None, "AppointmentChange", {"200": "Appointment"}),
    "getAppointmentAudit": (None, None, {"200": "AuditTrail"}),
    "joinWaitlist": (None, "WaitlistCreate", {"201": "WaitlistEntry"}),
    "listWaitlist": (models.WaitlistQuery, None, {"200": "WaitlistList"}),
    "leaveWaitlist": (None, None, {"200": "WaitlistAnswer"}),
    "acceptOffer": (None, "OfferAnswer", {"200": "Appointment"}),
    "declineOffer": (None, "OfferAnswer", {"200": "WaitlistAnswer"}),
}
# Operations whose body may be left out (older clients send none).
OPTIONAL_BODIES = {"acceptOffer", "declineOffer"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return render(OPENAPI.read_text(), VALUES)


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """The API's operations; CORS preflights (OPTIONS) and HEAD twins are checked on their own."""
    return [
        (path, method.upper(), op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method not in ("options", "head")
    ]


def test_every_get_has_a_head_twin_on_its_backend(spec: dict[str, Any]) -> None:
    """API Gateway routes only declared methods (a HEAD it does not know is its 405): each GET
    has a HEAD with the same backend, security and parameters, and nothing else has one."""
    for path, item in spec["paths"].items():
        assert ("get" in item) == ("head" in item), path
        if "get" not in item:
            continue
        get, head = item["get"], item["head"]
        assert head["operationId"] == "head" + get["operationId"][0].upper() + get["operationId"][1:]
        for key in ("x-google-backend", "security", "parameters"):
            assert head.get(key) == get.get(key), (path, key)
        assert set(head["responses"]) == set(get["responses"]), path
        assert all("schema" not in response for response in head["responses"].values()), path


def test_every_path_has_a_preflight_on_its_own_backend(spec: dict[str, Any], routers: dict[str, Router]) -> None:
    for path, item in spec["paths"].items():
        preflight = item["options"]
        assert preflight["operationId"].startswith("preflight")
        assert "security" not in preflight, "a browser sends no token with a preflight"
        assert set(preflight["responses"]) == {"204"}
        params = {p["name"] for p in preflight.get("parameters", []) if p["in"] == "path"}
        assert params == {part[1:-1] for part in path.split("/") if part.startswith("{")}
        function = backend_function(preflight)
        # The backend answers the path's other methods, so its Router knows the path.
        assert function in {backend_function(op) for method, op in item.items() if method != "options"}
        assert any(template == path for _, template in routers[function].routes)


# -- pydantic's view of a field, reduced to what Swagger 2.0 can say ---------------------------


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return {**root.get("$defs", {})[name], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def field_view(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """{types, format, enum, nullable, bounds} of one property of pydantic's JSON schema."""
    schema = resolve(schema, root)
    variants = [resolve(v, root) for v in schema.get("anyOf", [schema])]
    nullable = any(v.get("type") == "null" for v in variants)
    variants = [v for v in variants if v.get("type") != "null"]
    types = {v.get("type") for v in variants}
    formats = {v.get("format") for v in variants}
    enum: set[Any] = set()
    for v in variants:
        enum |= set(v.get("enum", [v["const"]] if "const" in v else []))
    bounds = {
        key: value
        for v in variants
        for key, value in v.items()
        if key in ("minLength", "maxLength", "minimum", "maximum", "pattern")
    }
    return {"types": types, "formats": formats, "enum": enum, "nullable": nullable, "bounds": bounds}


def doc_view(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "types": {schema.get("type")} if "type" in schema else {"object" if "$ref" in schema else None},
        "formats": {schema.get("format")},
        "enum": set(schema.get("enum", [])),
        "nullable": bool(schema.get("x-nullable")),
        "bounds": {k: v for k, v in schema.items() if k in ("minLength", "maxLength", "minimum", "maximum", "pattern")},
    }


def model_schema(model: type[BaseModel], request: bool) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True, mode="validation" if request else "serialization")


# -- definitions --------------------------------------------------------------------------------


def test_every_definition_has_a_model(spec: dict[str, Any]) -> None:
    assert set(spec["definitions"]) == set(DEFINITIONS)


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_definition_matches_model(spec: dict[str, Any], name: str) -> None:
    model, request = DEFINITIONS[name], name in REQUESTS
    doc = spec["definitions"][name]
    schema = model_schema(model, request)
    properties: dict[str, Any] = schema["properties"]
    assert set(doc["properties"]) == set(properties), "field names"
    assert set(doc.get("required", [])) == set(schema.get("required", [])), "required fields"
    if request:
        # Models refuse unknown fields; the document says so.
        assert doc.get("additionalProperties") is False
    for field, prop in properties.items():
        ours, theirs = field_view(prop, schema), doc_view(doc["properties"][field])
        where = f"{name}.{field}"
        assert theirs["enum"] == ours["enum"], f"{where}: enum"
        assert theirs["nullable"] == ours["nullable"], f"{where}: nullable (x-nullable)"
        expected_type = ours["types"] - {None}
        if expected_type == {"array"}:
            assert theirs["types"] == {"array"}, where
        elif expected_type and not (expected_type == {"object"} and "$ref" in doc["properties"][field]):
            assert theirs["types"] == expected_type, f"{where}: type {theirs['types']} != {expected_type}"
        # The formats a client relies on: ids, instants, dates, emails.
        for fmt in ("uuid", "date-time", "date", "email"):
            assert (fmt in ours["formats"]) == (fmt in theirs["formats"]), f"{where}: format {fmt}"
        # Bounds the document states must be the model's, and length caps must be stated.
        for key, value in theirs["bounds"].items():
            assert ours["bounds"].get(key) == value, f"{where}: {key}"
        for key in ("minLength", "maxLength", "minimum", "maximum"):
            if key == "maxLength" and "pattern" in theirs["bounds"] and ours["bounds"].get(key) == STRICT_MAX:
                continue  # the pattern bounds it far below the models' blanket cap
            if key in ours["bounds"]:
                assert theirs["bounds"].get(key) == ours["bounds"][key], f"{where}: {key} missing in the document"


def test_arrays_hold_the_documented_items(spec: dict[str, Any]) -> None:
    items = {
        name: d["properties"]["items"]["items"]["$ref"].split("/")[-1]
        for name, d in spec["definitions"].items()
        if "items" in d["properties"] and d["properties"]["items"].get("type") == "array"
    }
    assert items == {
        "DoctorList": "Doctor",
        "PatientList": "Patient",
        "SlotList": "Slot",
        "PublishedSlots": "Slot",
        "AppointmentList": "Appointment",
        "AuditTrail": "AuditEntry",
        "WaitlistList": "WaitlistEntry",
    }
    for name, item in items.items():
        annotation = DEFINITIONS[name].model_fields["items"].annotation
        assert annotation == list[DEFINITIONS[item]], name  # type: ignore[valid-type]


# -- operations ---------------------------------------------------------------------------------


def test_every_operation_is_described(spec: dict[str, Any]) -> None:
    assert sorted(op["operationId"] for _, _, op in operations(spec)) == sorted(OPERATIONS)


@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
def test_operation_parameters_and_responses(spec: dict[str, Any], operation_id: str) -> None:
    path, _method, op = next(o for o in operations(spec) if o[2]["operationId"] == operation_id)
    query_model, body, responses = OPERATIONS[operation_id]
    parameters = op.get("parameters", [])
    # Path parameters: the template's, uuids, required.
    path_params = {p["name"]: p for p in parameters if p["in"] == "path"}
    assert set(path_params) == {part[1:-1] for part in path.split("/") if part.startswith("{")}
    assert all(p["required"] and p["type"] == "string" and p["format"] == "uuid" for p in path_params.values())
    # The body: the model the function parses.
    bodies = [p for p in parameters if p["in"] == "body"]
    if body is None:
        assert bodies == []
    else:
        required = operation_id not in OPTIONAL_BODIES
        assert [(b["required"], b["schema"]["$ref"]) for b in bodies] == [(required, f"#/definitions/{body}")]
    # Query parameters: the query model's fields.
    query = {p["name"]: p for p in parameters if p["in"] == "query"}
    if query_model is None:
        assert query == {}
    else:
        schema = query_model.model_json_schema(by_alias=True)
        assert set(query) == set(schema["properties"]), "query parameter names"
        assert {n for n, p in query.items() if p.get("required")} == set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            ours, theirs = field_view(prop, schema), doc_view(query[name])
            assert theirs["enum"] == ours["enum"], name
            assert theirs["types"] <= ours["types"] or ours["types"] == {"string"}, name
            # One format (a date, say) is stated; a choice (date-time or date) is not.
            formats = ours["formats"] - {None}
            assert theirs["formats"] - {None} == (formats if len(formats) == 1 else set()), f"{name}: format"
            for key, value in ours["bounds"].items():
                if key != "pattern":
                    assert theirs["bounds"].get(key) == value, f"{name}: {key}"
    # Success responses: the documented definitions.
    documented = {
        status: r["schema"]["$ref"].split("/")[-1] for status, r in op["responses"].items() if status.startswith("2")
    }
    assert documented == responses
    # Every failure is a problem.
    for status, response in op["responses"].items():
        if not status.startswith("2"):
            assert response == {"$ref": "#/responses/Problem"}, status
    if op.get("security"):
        assert "401" in op["responses"]


# -- routing ------------------------------------------------------------------------------------


def load_function(name: str) -> ModuleType:
    path = ROOT / "functions" / name / "main.py"
    spec = importlib.util.spec_from_file_location(f"clinic_function_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def routers() -> dict[str, Router]:
    found = {}
    for name in FUNCTIONS:
        router = load_function(name).router
        assert isinstance(router, Router)
        found[name] = router
    return found


def backend_function(op: dict[str, Any]) -> str:
    backend = op["x-google-backend"]
    assert backend["path_translation"] == "APPEND_PATH_TO_ADDRESS"
    assert backend["jwt_audience"] == backend["address"]
    return {url: name.removesuffix("_url") for name, url in VALUES.items()}[backend["address"]]


def test_every_documented_operation_is_routed_by_its_backend(spec: dict[str, Any], routers: dict[str, Router]) -> None:
    for path, method, op in operations(spec):
        function = backend_function(op)
        assert (method, path) in routers[function].routes, f"{method} {path} is not routed by {function}"


def test_every_route_is_documented_with_its_backend(spec: dict[str, Any], routers: dict[str, Router]) -> None:
    documented = {(method, path): backend_function(op) for path, method, op in operations(spec)}
    for function, router in routers.items():
        assert router.name == function
        for method, template in router.routes:
            if template.startswith("/tasks/"):
                # Called by Cloud Tasks and Cloud Scheduler directly, never through the gateway.
                assert function == "notify"
                assert (method, template) not in documented
                continue
            assert documented.get((method, template)) == function, f"{method} {template} ({function})"


def test_routes_match_requests_as_documented(routers: dict[str, Router]) -> None:
    """The documented templates, with ids filled in, reach a handler (uuids) or a 404."""
    from shared.errors import MethodNotAllowed, NotFound

    book = routers["book"]
    route, params = book._match("GET", "/appointments/6b1f5c2e-0000-4000-8000-000000000000/audit")
    assert route.handler.__name__ == "get_audit"
    assert params == {"appointment_id": uuid.UUID("6b1f5c2e-0000-4000-8000-000000000000")}
    with pytest.raises(NotFound):
        book._match("GET", "/appointments/not-a-uuid")
    canonical = "6b1f5c2e-0000-4000-8000-000000000000"
    assert book._match("GET", f"/appointments/{canonical.upper()}")[1]["appointment_id"] == uuid.UUID(canonical)
    for other_spelling in ("{" + canonical + "}", "urn:uuid:" + canonical, canonical.replace("-", "")):
        with pytest.raises(NotFound):
            book._match("GET", f"/appointments/{other_spelling}")
    with pytest.raises(MethodNotAllowed):
        book._match("DELETE", "/appointments")
    with pytest.raises(NotFound):
        routers["cancel"]._match("GET", "/doctors")


def test_the_document_is_the_one_terraform_renders() -> None:
    text = OPENAPI.read_text()
    variables = set(re.findall(r"\$\{(\w+)\}", text))
    assert variables == set(VALUES) - {"notify_url"}
    terraform = (ROOT / "infra" / "terraform").rglob("*.tf")
    assert any("openapi.yaml" in Path(f).read_text() for f in terraform)
