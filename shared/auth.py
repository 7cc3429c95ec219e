"""The caller, read only from the gateway's X-Apigateway-Api-Userinfo header.

API Gateway (and the local gateway) verified the JWT and forwards its claims as
base64url JSON; the functions accept traffic only from the gateway, so they trust it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass
from typing import cast

from shared.enums import ROLES, Role
from shared.errors import Forbidden, Unauthenticated
from shared.text import one_line

USERINFO_HEADER = "X-Apigateway-Api-Userinfo"
# One plain address (RFC 5322 dot-atoms, letters of any script), at most 320 characters:
# nothing that an email header could read as a second recipient or a display name.
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_EMAIL = re.compile(rf"(?=.{{3,320}}\Z){_ATOM}(?:\.{_ATOM})*@[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+")
# Identity providers whose subjects are not uuids (Firebase uids) map to a stable uuid.
_SUBJECT_NAMESPACE = uuid.UUID("7f1f9a52-3b4c-4d1e-9a4a-2f6f4c1d8e10")


@dataclass(frozen=True)
class Caller:
    id: uuid.UUID
    email: str
    name: str
    role: Role


def subject_to_id(issuer: str, subject: str) -> uuid.UUID:
    try:
        return uuid.UUID(subject)
    except ValueError:
        return uuid.uuid5(_SUBJECT_NAMESPACE, f"{issuer}|{subject}")


def caller_from_header(value: str | None) -> Caller:
    if not value:
        raise Unauthenticated("sign in: this route needs a bearer token")
    try:
        claims = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise Unauthenticated("the gateway's identity header is unreadable") from error
    if not isinstance(claims, dict):
        raise Unauthenticated("the gateway's identity header is unreadable")
    subject, email = claims.get("sub"), claims.get("email")
    if not isinstance(subject, str) or not subject or not isinstance(email, str):
        raise Unauthenticated("the token must carry 'sub' and 'email' claims")
    email = email.strip()
    if not _EMAIL.fullmatch(email):
        # It becomes the users row and the To of every email: refused, never cut or cleaned.
        raise Unauthenticated("the token's 'email' claim is not an email address")
    if claims.get("email_verified") is not True:
        # The address becomes the account and the To of every notice. Taken unverified,
        # someone else's would lock its owner out and have the clinic write to them.
        raise Forbidden("verify your email address first: the clinic writes to it")
    role = claims.get("role", "patient")
    if role not in ROLES:
        raise Forbidden(f"unknown role {role!r}")
    name = _display_name(claims.get("name"))
    if not name:
        name = email.split("@")[0]
    return Caller(
        id=subject_to_id(str(claims.get("iss", "")), subject),
        email=email.lower(),
        name=name,
        role=cast(Role, role),
    )


def _display_name(claim: object) -> str:
    """The name claim as one line of storable text: control characters and line breaks
    become spaces (as in emails), and a lone surrogate, which no database encoding holds,
    a replacement character."""
    if not isinstance(claim, str):
        return ""
    text = claim.encode("utf-8", "replace").decode("utf-8")
    return " ".join(one_line(text).split())[:200]
