"""Sign-in (decision 0010): the auth emulator's unsigned ID tokens are taken by the local
gateway only when the local stack says so, become the same caller a production token
would, and the production configuration refuses them."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import jwt
import pytest

from local import auth_emulator, keys
from local.gateway import Gateway, Problem, Request, Verifier, create_app, render
from local.paths import OPENAPI, ROOT
from local.seed import DOCTORS_SEED
from local.stack import Stack
from shared.auth import caller_from_header
from tests.unit.test_terraform import variables

TERRAFORM = ROOT / "infra" / "terraform"
PRODUCTION_PROJECT = "clinic-prod-123"
DOCTOR_ID, DOCTOR_EMAIL, DOCTOR_NAME, *_ = DOCTORS_SEED[0]


def emulator_token(project: str = auth_emulator.PROJECT, ttl: int = 3600, **changes: Any) -> str:
    """An ID token as the emulator makes one (firebase-tools' generateJwt): alg none, no
    signature, a production ID token's claims with the custom claims at the top level."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "name": DOCTOR_NAME,
        "role": "doctor",
        "email": DOCTOR_EMAIL,
        "email_verified": True,
        "auth_time": now,
        "user_id": str(DOCTOR_ID),
        "firebase": {"identities": {"email": [DOCTOR_EMAIL]}, "sign_in_provider": "password"},
        "iat": now,
        "exp": now + ttl,
        "aud": project,
        "iss": f"https://securetoken.google.com/{project}",
        "sub": str(DOCTOR_ID),
    }
    claims.update(changes)
    token = jwt.encode(claims, "", algorithm="none")
    assert token.endswith(".")  # no signature at all, as the emulator's
    return token


@pytest.fixture
def emulator_verifier(key_state: Path) -> Verifier:
    return Verifier(keys.ISSUER, keys.key_dir(key_state) / "jwks.json", [keys.AUDIENCE], auth_emulator.PROJECT)


def refused(verifier: Verifier, token: str) -> str:
    with pytest.raises(Problem) as caught:
        verifier.verify(f"Bearer {token}")
    assert caught.value.status == 401
    return caught.value.detail


def test_the_local_gateway_takes_emulator_tokens_when_told_to(emulator_verifier: Verifier) -> None:
    claims = emulator_verifier.verify(f"Bearer {emulator_token()}")
    assert claims["sub"] == str(DOCTOR_ID) and claims["role"] == "doctor"


def test_an_emulator_token_becomes_the_seeded_user_with_its_role(emulator_verifier: Verifier) -> None:
    caller = caller_from_header(emulator_verifier.userinfo(f"Bearer {emulator_token()}"))
    # The emulator's uid is the seed's uuid, so the account is the seeded doctor's row.
    assert caller.id == DOCTOR_ID and caller.role == "doctor"
    assert caller.email == DOCTOR_EMAIL and caller.name == DOCTOR_NAME


def test_a_uid_that_is_not_a_uuid_maps_as_a_production_uid_does(emulator_verifier: Verifier) -> None:
    token = emulator_token(sub="Xb3kP0firebaseUid12345", user_id="Xb3kP0firebaseUid12345")
    caller = caller_from_header(emulator_verifier.userinfo(f"Bearer {token}"))
    production = caller_from_header(
        base64.urlsafe_b64encode(
            json.dumps(
                {
                    "iss": "https://securetoken.google.com/demo-clinic",
                    "sub": "Xb3kP0firebaseUid12345",
                    "email": DOCTOR_EMAIL,
                    "email_verified": True,
                    "role": "doctor",
                }
            ).encode()
        ).decode()
    )
    assert caller.id == production.id and caller.id != UUID(int=0)


def test_emulator_tokens_of_another_project_or_expired_are_refused(emulator_verifier: Verifier) -> None:
    refused(emulator_verifier, emulator_token(project="someone-else"))
    refused(emulator_verifier, emulator_token(aud="someone-else"))
    refused(emulator_verifier, emulator_token(iss="https://clinic.local/issuer"))
    assert "expired" in refused(emulator_verifier, emulator_token(ttl=-120))
    claims = jwt.decode(emulator_token(), options={"verify_signature": False})
    del claims["sub"]
    refused(emulator_verifier, jwt.encode(claims, "", algorithm="none"))


def test_a_signed_token_still_needs_its_signature_in_emulator_mode(
    emulator_verifier: Verifier, key_state: Path
) -> None:
    # The `clinic token` tokens still work beside the emulator's...
    good = keys.make_token("patient", DOCTOR_ID, DOCTOR_EMAIL, state=key_state)
    assert emulator_verifier.verify(f"Bearer {good}")["role"] == "patient"
    # ...and an RS256 header over the emulator's claims is not let through unsigned.
    head = jwt.encode({}, keys.key_dir(key_state).joinpath("private.pem").read_bytes(), algorithm="RS256")
    _, payload, _ = emulator_token().split(".")
    refused(emulator_verifier, f"{head.split('.')[0]}.{payload}.")


def test_without_the_stacks_setting_the_gateway_refuses_emulator_tokens(verifier: Verifier) -> None:
    assert verifier.emulator_project is None
    assert "never taken" in refused(verifier, emulator_token())


def test_only_the_auth_emulator_extension_turns_emulator_tokens_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = Stack(state=tmp_path, extensions=[])
    assert "emulator_project" not in stack.gateway_config
    monkeypatch.setattr(auth_emulator, "installed", lambda: True)
    auth_emulator.extend(stack)
    assert stack.gateway_config["emulator_project"] == auth_emulator.PROJECT
    assert stack.gateway_config["web_config"] == auth_emulator.web_config(stack.ports.auth)


def _gateway_config(tmp_path: Path, key_state: Path, **extra: Any) -> str:
    config = tmp_path / "gateway.json"
    template = {
        "slots_url": "http://slots.test",
        "book_url": "http://book.test",
        "cancel_url": "http://cancel.test",
        "jwt_issuer": keys.ISSUER,
        "jwks_uri": "file:///jwks.json",
        "jwt_audience": keys.AUDIENCE,
    }
    config.write_text(
        json.dumps({"jwks_path": str(keys.key_dir(key_state) / "jwks.json"), "template": template, **extra})
    )
    return str(config)


def test_the_gateways_config_decides_and_defaults_to_refusing(tmp_path: Path, key_state: Path) -> None:
    plain = create_app(_gateway_config(tmp_path, key_state))
    refused(plain.verifier, emulator_token())
    local = create_app(_gateway_config(tmp_path, key_state, emulator_project=auth_emulator.PROJECT))
    assert local.verifier.verify(f"Bearer {emulator_token()}")["sub"] == str(DOCTOR_ID)


# -- the production configuration ---------------------------------------------------------------


def production_template_values() -> dict[str, str]:
    """The values Terraform fills openapi.yaml with, for the defaults of a deployment
    (Firebase / Identity Platform of the project), read from the .tf files."""
    main = (TERRAFORM / "main.tf").read_text()
    assert 'jwt_issuer   = coalesce(var.jwt_issuer, "https://securetoken.google.com/${var.project_id}")' in main
    assert "jwt_audience = coalesce(var.jwt_audience, var.project_id)" in main
    defaults = variables(TERRAFORM)
    gateway = (TERRAFORM / "modules" / "gateway" / "main.tf").read_text()
    # Terraform hands the template exactly these six values: nothing could switch on
    # unsigned tokens in the document API Gateway gets.
    templated = re.search(r"templatefile\(var\.openapi_path, \{(.*?)\}\)", gateway, re.S)
    assert templated is not None
    keys_given = sorted(re.findall(r"^\s*(\w+)\s*=", templated.group(1), re.M))
    assert keys_given == ["book_url", "cancel_url", "jwks_uri", "jwt_audience", "jwt_issuer", "slots_url"]
    return {
        "slots_url": "https://slots.example.run.app",
        "book_url": "https://book.example.run.app",
        "cancel_url": "https://cancel.example.run.app",
        "jwt_issuer": f"https://securetoken.google.com/{PRODUCTION_PROJECT}",
        "jwks_uri": defaults["jwks_uri"]["default"],
        "jwt_audience": PRODUCTION_PROJECT,
    }


def test_the_deployed_document_names_googles_signing_keys_only() -> None:
    spec = render(OPENAPI.read_text(), production_template_values())
    provider = spec["securityDefinitions"]["identity_provider"]
    assert provider == {
        "authorizationUrl": "",
        "flow": "implicit",
        "type": "oauth2",
        "x-google-issuer": f"https://securetoken.google.com/{PRODUCTION_PROJECT}",
        "x-google-jwks_uri": "https://www.googleapis.com/service_accounts/v1/metadata/x509/securetoken@system.gserviceaccount.com",
        "x-google-audiences": PRODUCTION_PROJECT,
    }


def test_the_production_configuration_refuses_emulator_tokens(key_state: Path) -> None:
    """The deployed document, verified as the gateway verifies it (RS256 against the
    issuer's keys; a local key pair stands in for Google's), refuses an emulator token
    even when it names the production project as issuer and audience."""
    spec = render(OPENAPI.read_text(), production_template_values())
    gateway = Gateway(spec, keys.key_dir(key_state) / "jwks.json")
    for token in (emulator_token(), emulator_token(project=PRODUCTION_PROJECT)):
        request = Request("GET", "/appointments", [("Authorization", f"Bearer {token}")])
        with pytest.raises(Problem) as caught:
            gateway.forward(request)
        assert caught.value.status == 401
    # The same document takes a token signed by the issuer's key (the stand-in's).
    private = (keys.key_dir(key_state) / "private.pem").read_bytes()
    claims = jwt.decode(emulator_token(project=PRODUCTION_PROJECT), options={"verify_signature": False})
    signed = jwt.encode(claims, private, algorithm="RS256", headers={"kid": keys.KEY_ID})
    _, headers = gateway.forward(Request("GET", "/appointments", [("Authorization", f"Bearer {signed}")]))
    assert any(name == "X-Apigateway-Api-Userinfo" for name, _ in headers)


def test_every_seed_user_is_a_demo_user_with_its_role_and_the_demo_password() -> None:
    from local.seed import ADMIN, PATIENTS_SEED

    users = {u["localId"]: u for u in auth_emulator.demo_users()}
    expected = {str(ADMIN[0]): (ADMIN[1], "admin")}
    expected |= {str(d[0]): (d[1], "doctor") for d in DOCTORS_SEED}
    expected |= {str(p[0]): (p[1], "patient") for p in PATIENTS_SEED}
    assert set(users) == set(expected)
    for uid, (email, role) in expected.items():
        user = users[uid]
        assert user["email"] == email and user["emailVerified"] is True
        assert user["rawPassword"] == auth_emulator.DEMO_PASSWORD == "clinic-demo"
        assert json.loads(user["customAttributes"]) == {"role": role}


def test_the_emulators_ports_are_the_stacks() -> None:
    config = auth_emulator.firebase_json(10499, 10500, 10501)["emulators"]
    assert config["auth"] == {"host": "127.0.0.1", "port": 10499}
    assert config["hub"]["port"] == 10500 and config["logging"]["port"] == 10501
    assert config["ui"] == {"enabled": False}
