"""shared/auth.py: the caller from the gateway's X-Apigateway-Api-Userinfo header."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from shared.auth import Caller, caller_from_header, subject_to_id
from shared.errors import Forbidden, Unauthenticated

SUB = "5b7e1a7e-2a43-4f0e-9a43-1c9a7b1f0c11"


def header(claims: object, pad: bool = False) -> str:
    """The header for these claims; a dict without 'email_verified' gets it as true."""
    if isinstance(claims, dict):
        claims = {"email_verified": True, **claims}
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode()
    return encoded if pad else encoded.rstrip("=")


def test_a_well_formed_header() -> None:
    caller = caller_from_header(
        header({"sub": SUB, "email": " Ada@Example.COM ", "name": " Ada ", "role": "doctor", "iss": "x"})
    )
    assert caller == Caller(id=uuid.UUID(SUB), email="ada@example.com", name="Ada", role="doctor")


def test_padding_either_way() -> None:
    claims = {"sub": SUB, "email": "a@example.com", "role": "admin"}
    assert caller_from_header(header(claims, pad=True)) == caller_from_header(header(claims))
    assert caller_from_header(header(claims)).role == "admin"


def test_defaults_role_patient_and_name_from_email() -> None:
    caller = caller_from_header(header({"sub": SUB, "email": "maria@example.com"}))
    assert caller.role == "patient"
    assert caller.name == "maria"
    assert caller_from_header(header({"sub": SUB, "email": "m@x.io", "name": "   "})).name == "m"
    assert caller_from_header(header({"sub": SUB, "email": "m@x.io", "name": 42})).name == "m"


def test_long_and_nul_names_are_tamed() -> None:
    caller = caller_from_header(header({"sub": SUB, "email": "m@x.io", "name": "a\u0000b" + "c" * 500}))
    assert "\x00" not in caller.name and len(caller.name) <= 200
    # A line break in a name must never reach an email header.
    caller = caller_from_header(header({"sub": SUB, "email": "m@x.io", "name": "Eve\r\nBcc: x@evil.example"}))
    assert caller.name == "Eve Bcc: x@evil.example"


@pytest.mark.parametrize(
    ("claim", "stored"),
    [
        ("Ann\tLee", "Ann Lee"),
        ("Ann\u2028Lee", "Ann Lee"),
        ("Ann\x85Lee", "Ann Lee"),
        ("Ann  \r\n  Lee", "Ann Lee"),
        ("Ann\ud800", "Ann?"),  # a lone surrogate: no database encoding can hold it
    ],
)
def test_a_name_claim_becomes_one_line_of_storable_text(claim: str, stored: str) -> None:
    caller = caller_from_header(header({"sub": SUB, "email": "m@x.io", "name": claim}))
    assert caller.name == stored
    caller.name.encode("utf-8")


@pytest.mark.parametrize("value", [None, ""])
def test_missing_header_is_401(value: str | None) -> None:
    with pytest.raises(Unauthenticated):
        caller_from_header(value)


@pytest.mark.parametrize(
    "value",
    [
        "%%%not base64%%%",
        "eyJzdWIi",  # truncated JSON
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),  # not UTF-8
        base64.urlsafe_b64encode(b"plain text").decode(),
        "a",  # one base64 character cannot be decoded
    ],
)
def test_unreadable_header_is_401(value: str) -> None:
    with pytest.raises(Unauthenticated):
        caller_from_header(value)


@pytest.mark.parametrize("claims", [[1, 2], "a string", 42, None, True])
def test_header_that_is_not_an_object_is_401(claims: object) -> None:
    with pytest.raises(Unauthenticated):
        caller_from_header(header(claims))


@pytest.mark.parametrize(
    "claims",
    [
        {"email": "a@example.com"},
        {"sub": "", "email": "a@example.com"},
        {"sub": 123, "email": "a@example.com"},
        {"sub": SUB},
        {"sub": SUB, "email": ""},
        {"sub": SUB, "email": "no-at-sign"},
        {"sub": SUB, "email": "victim@example.com\r\nBcc: attacker@evil.example"},
        {"sub": SUB, "email": "two words@example.com"},
        {"sub": SUB, "email": "a@b@example.com"},
        {"sub": SUB, "email": "a" * 400 + "@example.com"},
        {"sub": SUB, "email": "nobody@localhost"},
        {"sub": SUB, "email": "a,victim@evil.example"},
        {"sub": SUB, "email": '"Eve" <eve@evil.example>'},
        {"sub": SUB, "email": "a;b@example.com"},
        {"sub": SUB, "email": ["a@example.com"]},
    ],
)
def test_missing_sub_or_email_is_401(claims: dict[str, object]) -> None:
    with pytest.raises(Unauthenticated):
        caller_from_header(header(claims))


@pytest.mark.parametrize("role", ["root", "ADMIN", "", None, ["admin"]])
def test_unknown_role_is_403(role: object) -> None:
    with pytest.raises(Forbidden):
        caller_from_header(header({"sub": SUB, "email": "a@example.com", "role": role}))


def test_non_uuid_subjects_map_to_a_stable_uuid() -> None:
    first = caller_from_header(header({"sub": "firebase-uid-1", "email": "a@x.io", "iss": "https://idp"}))
    again = caller_from_header(header({"sub": "firebase-uid-1", "email": "b@x.io", "iss": "https://idp"}))
    other = caller_from_header(header({"sub": "firebase-uid-2", "email": "a@x.io", "iss": "https://idp"}))
    other_issuer = caller_from_header(header({"sub": "firebase-uid-1", "email": "a@x.io", "iss": "https://x"}))
    assert first.id == again.id == subject_to_id("https://idp", "firebase-uid-1")
    assert first.id.version == 5
    assert len({first.id, other.id, other_issuer.id}) == 3
    # A uuid subject is the id itself, in any spelling.
    assert subject_to_id("any", SUB.upper()) == uuid.UUID(SUB)


@pytest.mark.parametrize("verified", [False, "true", 1, None, "absent"])
def test_an_unverified_email_is_refused(verified: object) -> None:
    """The address becomes the account and the To of every notice: only one its owner
    has confirmed (the claim exactly true)."""
    claims: dict[str, object] = {"sub": SUB, "email": "someone@example.com", "role": "patient"}
    if verified != "absent":
        claims["email_verified"] = verified
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode()
    with pytest.raises(Forbidden, match="verify your email address"):
        caller_from_header(encoded)


@pytest.mark.parametrize(
    ("stored", "claimed", "said"), [("admin", "patient", "an admin"), ("doctor", "admin", "a doctor")]
)
def test_a_token_of_another_role_is_told_what_the_account_is(stored: str, claimed: str, said: str) -> None:
    from shared.repositories import SqlAccounts

    caller = Caller(uuid.uuid4(), "someone@example.com", "Someone", claimed)  # type: ignore[arg-type]

    class Tx:
        def first(self, *_: object, **__: object) -> dict[str, str]:
            return {"role": stored}

    with pytest.raises(Forbidden) as refused:
        SqlAccounts(Tx()).check_reader(caller)  # type: ignore[arg-type]
    assert refused.value.detail == f"this account is {said} account; the token says {claimed}"
