"""local/gateway.py: template rendering, route matching, token verification, header hygiene."""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import re
import threading
import time
from pathlib import Path
from typing import Any, ClassVar
from uuid import uuid4

import jwt
import pytest

from local import gateway as gateway_module
from local import keys
from local.gateway import PROBLEM_TYPES, USERINFO, Gateway, Problem, Reply, Request, Upstream, Verifier, render
from local.paths import OPENAPI

VALUES = {
    "slots_url": "http://slots.test",
    "book_url": "http://book.test",
    "cancel_url": "http://cancel.test",
    "jwt_issuer": keys.ISSUER,
    "jwks_uri": "file:///jwks.json",
    "jwt_audience": keys.AUDIENCE,
}
SUB = uuid4()


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return render(OPENAPI.read_text(), VALUES)


def token(state: Path, **kwargs: Any) -> str:
    return keys.make_token("patient", SUB, "p@example.com", "P", state=state, **kwargs)


# -- render ------------------------------------------------------------------------------


def test_render_fills_template_values_and_keeps_refs(spec: dict[str, Any]) -> None:
    get = spec["paths"]["/doctors"]["get"]
    assert get["x-google-backend"]["address"] == "http://slots.test"
    assert get["responses"]["200"]["schema"] == {"$ref": "#/definitions/DoctorList"}
    assert spec["securityDefinitions"]["identity_provider"]["x-google-issuer"] == keys.ISSUER
    assert "${" not in json.dumps(spec)


def test_render_refuses_a_missing_value() -> None:
    with pytest.raises(KeyError):
        render("a: ${slots_url}\nb: ${nope}\n", {"slots_url": "x"})


def test_render_leaves_dollar_text_alone() -> None:
    assert render('a: {$ref: "#/x"}\nb: "$notavar"\nc: ${v}\n', {"v": "1"}) == {
        "a": {"$ref": "#/x"},
        "b": "$notavar",
        "c": 1,
    }


# -- routes ------------------------------------------------------------------------------


@pytest.fixture
def gateway(spec: dict[str, Any], key_state: Path) -> Gateway:
    return Gateway(spec, keys.key_dir(key_state) / "jwks.json")


@pytest.mark.parametrize(
    ("method", "path", "operation", "backend"),
    [
        ("GET", "/doctors", "listDoctors", "http://slots.test"),
        ("POST", "/doctors", "createDoctor", "http://slots.test"),
        ("GET", f"/doctors/{SUB}", "getDoctor", "http://slots.test"),
        ("GET", "/doctors/not-a-uuid", "getDoctor", "http://slots.test"),  # the function answers 404
        ("GET", f"/doctors/{SUB}/slots", "listFreeSlots", "http://slots.test"),
        ("POST", f"/doctors/{SUB}/slots", "publishSlots", "http://slots.test"),
        ("POST", "/patients", "registerPatient", "http://book.test"),
        ("GET", "/patients", "findPatients", "http://book.test"),
        ("POST", "/appointments", "bookAppointment", "http://book.test"),
        ("GET", "/appointments", "listAppointments", "http://book.test"),
        ("GET", f"/appointments/{SUB}", "getAppointment", "http://book.test"),
        ("PATCH", f"/appointments/{SUB}", "changeAppointment", "http://cancel.test"),
        ("GET", f"/appointments/{SUB}/audit", "getAppointmentAudit", "http://book.test"),
        # HEAD as API Gateway routes it: declared beside each GET, on the same backend.
        ("HEAD", "/doctors", "headListDoctors", "http://slots.test"),
        ("HEAD", f"/doctors/{SUB}/slots", "headListFreeSlots", "http://slots.test"),
        ("HEAD", f"/appointments/{SUB}", "headGetAppointment", "http://book.test"),
    ],
)
def test_routes(gateway: Gateway, method: str, path: str, operation: str, backend: str) -> None:
    found = gateway.match(method, path)
    assert (found.operation_id, found.backend) == (operation, backend)


def test_secured_routes(gateway: Gateway) -> None:
    assert not gateway.match("GET", "/doctors").secured
    assert not gateway.match("GET", f"/doctors/{SUB}/slots").secured
    assert gateway.match("POST", "/doctors").secured
    assert gateway.match("GET", "/appointments").secured
    assert gateway.match("PATCH", f"/appointments/{SUB}").secured


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/nope",
        "/doctors/",
        "/doctors/a/b",
        f"/appointments/{SUB}/audit/x",
        "/tasks/notify",
        "/tasks/sweep",
        "/Doctors",
        "/doctors//slots",
        f"/appointments/{SUB}/",
        # A regular expression's `$` matches before a final newline: "/doctors\n" was /doctors.
        "/doctors\n",
    ],
)
def test_unknown_paths_are_404(gateway: Gateway, path: str) -> None:
    with pytest.raises(Problem) as caught:
        gateway.match("GET", path)
    assert caught.value.status == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/doctors"),
        ("PUT", "/doctors"),
        ("PATCH", "/doctors"),
        ("DELETE", f"/appointments/{SUB}"),
        ("POST", f"/appointments/{SUB}"),
        ("POST", f"/appointments/{SUB}/audit"),
        ("PUT", "/appointments"),
        ("PATCH", "/patients"),
        ("DELETE", "/patients"),
    ],
)
def test_unknown_methods_are_405(gateway: Gateway, method: str, path: str) -> None:
    with pytest.raises(Problem) as caught:
        gateway.match(method, path)
    assert caught.value.status == 405


def test_a_cors_preflight_goes_to_the_paths_backend_without_a_token(gateway: Gateway) -> None:
    for path in ("/doctors", f"/appointments/{SUB}", f"/appointments/{SUB}/audit"):
        operation = gateway.match("OPTIONS", path)
        assert not operation.secured and operation.operation_id.startswith("preflight")


# -- tokens ------------------------------------------------------------------------------


def test_a_valid_token(verifier: Verifier, key_state: Path) -> None:
    claims = verifier.verify(f"Bearer {token(key_state)}")
    assert claims["sub"] == str(SUB) and claims["role"] == "patient"
    assert verifier.verify(f"bearer {token(key_state)}")["sub"] == str(SUB)


def expect_401(verifier: Verifier, authorization: str | None, match: str = "") -> None:
    with pytest.raises(Problem) as caught:
        verifier.verify(authorization)
    assert caught.value.status == 401
    assert match in caught.value.detail


def test_an_expired_token(verifier: Verifier, key_state: Path) -> None:
    expect_401(verifier, f"Bearer {token(key_state, ttl=-120)}", "expired")


def test_a_token_not_yet_valid(verifier: Verifier, key_state: Path) -> None:
    later = int(time.time()) + 600
    expect_401(verifier, f"Bearer {token(key_state, extra={'nbf': later, 'iat': later})}")


def test_a_token_signed_by_another_key(verifier: Verifier, tmp_path: Path) -> None:
    other = tmp_path / "other"
    keys.ensure_keys(other)
    expect_401(verifier, f"Bearer {token(other)}", "not valid")


def test_wrong_issuer_and_audience(verifier: Verifier, key_state: Path) -> None:
    expect_401(verifier, f"Bearer {token(key_state, extra={'iss': 'https://evil.example'})}")
    expect_401(verifier, f"Bearer {token(key_state, extra={'aud': 'someone-else'})}")


def test_missing_required_claims(verifier: Verifier, key_state: Path) -> None:
    private = (keys.key_dir(key_state) / "private.pem").read_bytes()
    base = {"iss": keys.ISSUER, "aud": keys.AUDIENCE, "sub": str(SUB), "exp": int(time.time()) + 60}
    for missing in ("exp", "iss", "sub", "aud"):
        claims = {k: v for k, v in base.items() if k != missing}
        signed = jwt.encode(claims, private, algorithm="RS256", headers={"kid": keys.KEY_ID})
        expect_401(verifier, f"Bearer {signed}")


def test_unsigned_and_symmetric_tokens(verifier: Verifier, key_state: Path) -> None:
    claims = {"iss": keys.ISSUER, "aud": keys.AUDIENCE, "sub": str(SUB), "exp": int(time.time()) + 60}
    expect_401(verifier, f"Bearer {jwt.encode(claims, None, algorithm='none')}")
    expect_401(verifier, f"Bearer {jwt.encode(claims, 'a shared secret of 32 bytes or more!!', algorithm='HS256')}")
    # A tampered payload with the original signature.
    head, _, signature = token(key_state).split(".")
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "role": "admin"}).encode()).decode().rstrip("=")
    expect_401(verifier, f"Bearer {head}.{forged}.{signature}")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "Bearer a b",
        "Bearer not.a.jwt",
        "Bearer ...",
        "Bearer eyJhbGciOiJSUzI1NiJ9",
        "Bearertoken",
        "Bearer \x00",
    ],
)
def test_malformed_authorization_headers(verifier: Verifier, authorization: str | None) -> None:
    expect_401(verifier, authorization)


def test_a_valid_token_with_garbage_appended(verifier: Verifier, key_state: Path) -> None:
    expect_401(verifier, f"Bearer {token(key_state)}x")
    expect_401(verifier, f"Bearer {token(key_state)} {token(key_state)}")


# -- forwarding --------------------------------------------------------------------------


class FakeBackend:
    """Stands in for the upstream connections: records what the gateway would send."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def request(self, method: str, url: str, body: bytes | None, headers: list[tuple[str, str]]) -> Reply:
        self.calls.append(
            {"method": method, "url": url, "body": body, "headers": dict(headers), "header_list": headers}
        )
        return Reply(200, [("Content-Type", "application/json")], b"{}")


def call(
    gateway: Gateway, method: str, target: str, headers: dict[str, str], body: bytes = b"", query: str = ""
) -> tuple[str, bytes]:
    """(status, body) of one request; `target` is the raw path as a client sends it."""
    request = Request(method, target + (f"?{query}" if query else ""), list(headers.items()), body)
    reply = asyncio.run(gateway.handle(request))
    return str(reply.status), reply.data


def userinfo(claims: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")


def test_a_client_sent_identity_header_is_replaced(gateway: Gateway, key_state: Path) -> None:
    backend = FakeBackend()
    gateway.http = backend  # type: ignore[assignment]
    victim = {"sub": str(uuid4()), "email": "victim@example.com", "role": "admin"}
    mine = token(key_state)
    status, _ = call(
        gateway,
        "GET",
        "/appointments",
        {
            "Authorization": f"Bearer {mine}",
            USERINFO: userinfo(victim),
            "X-Forwarded-Authorization": "Bearer forged",
        },
        query="status=BOOKED",
    )
    assert status.startswith("200")
    sent = backend.calls[0]
    assert sent["url"] == "http://book.test/appointments?status=BOOKED"
    forwarded = sent["headers"]
    assert [k for k, _ in sent["header_list"] if k.lower() == USERINFO.lower()] == [USERINFO]
    claims = json.loads(base64.urlsafe_b64decode(forwarded[USERINFO] + "=="))
    assert claims["sub"] == str(SUB) and claims["role"] == "patient"
    assert "Authorization" not in forwarded
    # The client's own X-Forwarded-Authorization is dropped too; the gateway sets it.
    assert forwarded["X-Forwarded-Authorization"] == f"Bearer {mine}"


def test_an_identity_header_is_never_forwarded_on_open_routes(gateway: Gateway) -> None:
    backend = FakeBackend()
    gateway.http = backend  # type: ignore[assignment]
    status, _ = call(gateway, "GET", "/doctors", {USERINFO: userinfo({"sub": str(SUB), "email": "a@b.c"})})
    assert status.startswith("200")
    assert not [k for k in backend.calls[0]["headers"] if k.lower() == USERINFO.lower()]


def test_a_forged_identity_header_without_a_token_is_401(gateway: Gateway) -> None:
    backend = FakeBackend()
    gateway.http = backend  # type: ignore[assignment]
    status, data = call(
        gateway, "GET", "/appointments", {USERINFO: userinfo({"sub": str(SUB), "email": "a@b.c", "role": "admin"})}
    )
    assert status.startswith("401")
    assert json.loads(data)["status"] == 401
    assert backend.calls == []


def test_bodies_and_content_types_are_forwarded(gateway: Gateway, key_state: Path) -> None:
    backend = FakeBackend()
    gateway.http = backend  # type: ignore[assignment]
    body = b'{"slot_id": "x"}'
    call(
        gateway,
        "POST",
        "/appointments",
        {"Authorization": f"Bearer {token(key_state)}", "Content-Type": "application/json", "Idempotency-Key": "k1"},
        body,
    )
    sent = backend.calls[0]
    assert sent["body"] == body
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["headers"]["Idempotency-Key"] == "k1"


def test_a_long_url_is_a_414_problem(gateway: Gateway) -> None:
    backend = FakeBackend()
    gateway.http = backend  # type: ignore[assignment]
    status, data = call(gateway, "GET", "/doctors", {}, query="specialty=" + "s" * 4000)
    assert status.startswith("414")
    assert json.loads(data)["status"] == 414
    assert backend.calls == []
    status, _ = call(gateway, "GET", "/doctors", {}, query="specialty=" + "s" * 3000)
    assert status.startswith("200")


@pytest.mark.parametrize(
    ("path", "forwarded"),
    [
        ("/doctors/%1f", "/doctors/%1F"),
        ("/doctors/a%20b/slots", "/doctors/a%20b/slots"),
        ("/appointments/%E2%82%AC", "/appointments/%E2%82%AC"),
        ("/appointments/%e2%82%ac", "/appointments/%E2%82%AC"),
        (f"/appointments/{SUB}/audit", f"/appointments/{SUB}/audit"),
    ],
)
def test_paths_are_forwarded_percent_encoded(gateway: Gateway, key_state: Path, path: str, forwarded: str) -> None:
    backend = FakeBackend()
    gateway.http = backend  # type: ignore[assignment]
    status, _ = call(gateway, "GET", path, {"Authorization": f"Bearer {token(key_state)}"})
    assert status.startswith("200")
    assert backend.calls[0]["url"].split(".test", 1)[1] == forwarded


# -- keep-alive connections to the backends ---------------------------------------------------


class _Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: ClassVar[list[tuple[str, int]]] = []

    def setup(self) -> None:
        super().setup()
        _Backend.connections.append(self.client_address)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        pass


def test_idle_connections_are_not_reused_near_the_backends_keep_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Backend.connections.clear()
    url = f"http://127.0.0.1:{server.server_address[1]}/doctors"

    async def scenario() -> None:
        upstream = Upstream(connect_timeout=2.0, read_timeout=5.0)
        for _ in range(3):
            assert (await upstream.request("GET", url, None, [])).status == 200
        assert len(_Backend.connections) == 1  # kept alive and reused
        await asyncio.sleep(0.3)
        assert (await upstream.request("GET", url, None, [])).status == 200
        assert len(_Backend.connections) == 2  # idle too long: a fresh connection
        upstream.close()

    try:
        monkeypatch.setattr(Upstream, "REUSE_IDLE", 0.2)
        asyncio.run(scenario())
    finally:
        server.shutdown()
        server.server_close()


def test_every_problem_the_gateway_makes_has_a_problem_type() -> None:
    """Each status a Problem is raised with in the gateway's source has its own /problems/ type
    (a 408 was `about:blank`)."""
    source = Path(gateway_module.__file__).read_text()
    statuses = {int(status) for status in re.findall(r"Problem\((\d{3}),", source)}
    assert {400, 401, 404, 405, 408, 413, 414, 431, 500, 503} <= statuses
    for status in statuses:
        assert PROBLEM_TYPES[status].startswith("/problems/"), status
