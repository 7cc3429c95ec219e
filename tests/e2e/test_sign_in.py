"""Signing in as the web app does, against the stack's auth emulator, and using the API
with the ID token it gives (decision 0010)."""

from __future__ import annotations

from typing import Any

import requests

from local import auth_emulator
from local.seed import ADMIN, DOCTORS_SEED, PATIENTS_SEED
from local.stack import Stack


def app_config(app_url: str) -> dict[str, Any]:
    response = requests.get(app_url + "config.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    config: dict[str, Any] = response.json()
    return config


def sign_in(config: dict[str, Any], email: str, password: str = auth_emulator.DEMO_PASSWORD) -> requests.Response:
    """What the app sends: the Identity Toolkit REST call, at the URL /config.json names."""
    auth = config["auth"]
    return requests.post(
        f"{auth['identityToolkitUrl']}/v1/accounts:signInWithPassword",
        params={"key": auth["apiKey"]},
        json={"email": email, "password": password, "returnSecureToken": True},
        timeout=10,
    )


def test_the_config_names_the_stacks_emulator_and_the_csp_allows_it(app_url: str, auth_port: int) -> None:
    config = app_config(app_url)
    base = f"http://127.0.0.1:{auth_port}"
    assert config == {
        "auth": {
            "apiKey": "local",
            "identityToolkitUrl": f"{base}/identitytoolkit.googleapis.com",
            "secureTokenUrl": f"{base}/securetoken.googleapis.com",
        }
    }
    csp = requests.get(app_url + "config.json", timeout=10).headers["Content-Security-Policy"]
    assert f"connect-src 'self' {base};" in csp


def test_every_demo_user_signs_in_with_their_role_and_uses_the_api(app_url: str, stack: Stack) -> None:
    config = app_config(app_url)
    api = stack.url("gateway")
    people = [(ADMIN[0], ADMIN[1], "admin")]
    people += [(d[0], d[1], "doctor") for d in DOCTORS_SEED] + [(p[0], p[1], "patient") for p in PATIENTS_SEED]
    for user_id, email, role in people:
        answer = sign_in(config, email)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["localId"] == str(user_id)
        token = body["idToken"]
        listed = requests.get(f"{api}/appointments", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        # 200 only if the role claim matched the account's role (a wrong one is 403).
        assert listed.status_code == 200, (role, listed.text)
    patient_token = sign_in(config, PATIENTS_SEED[0][1]).json()["idToken"]
    refused = requests.post(
        f"{api}/doctors",
        headers={"Authorization": f"Bearer {patient_token}"},
        json={"email": "x@clinic.example", "name": "X", "specialty": "X", "timezone": "UTC"},
        timeout=10,
    )
    assert refused.status_code == 403


def test_a_wrong_password_is_refused_and_a_refreshed_token_works(app_url: str, stack: Stack) -> None:
    config = app_config(app_url)
    assert sign_in(config, ADMIN[1], "not-the-password").status_code == 400
    refresh_token = sign_in(config, ADMIN[1]).json()["refreshToken"]
    refreshed = requests.post(
        f"{config['auth']['secureTokenUrl']}/v1/token",
        params={"key": config["auth"]["apiKey"]},
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        timeout=10,
    )
    assert refreshed.status_code == 200, refreshed.text
    token = refreshed.json()["id_token"]
    me = requests.get(f"{stack.url('gateway')}/appointments", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.status_code == 200


def test_a_forged_unsigned_token_of_another_issuer_is_refused(stack: Stack) -> None:
    import jwt

    claims = {"iss": "https://securetoken.google.com/some-real-project", "aud": "some-real-project"}
    forged = jwt.encode({**claims, "sub": str(ADMIN[0]), "exp": 4102444800, "role": "admin"}, "", algorithm="none")
    answer = requests.get(
        f"{stack.url('gateway')}/appointments", headers={"Authorization": f"Bearer {forged}"}, timeout=10
    )
    assert answer.status_code == 401
