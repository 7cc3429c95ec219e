"""Opaque page tokens: a keyset position, base64url JSON. A bad token is a 400."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared.errors import BadRequest


def encode(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str | None, fields: dict[str, Callable[[str], Any]]) -> dict[str, Any] | None:
    """The position in `token`, each field parsed by its converter; None for page one."""
    if token is None:
        return None
    refused = BadRequest("page_token is not a token this API issued")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        position = json.loads(raw)
        if not isinstance(position, dict) or set(position) != set(fields):
            raise refused
        return {name: convert(_storable(position[name])) for name, convert in fields.items()}
    except (binascii.Error, ValueError, UnicodeError, TypeError, OverflowError) as error:
        raise refused from error


def _storable(value: object) -> str:
    # Every field of a token this API issues is a string: a forged null or number is
    # refused, not read as the text "None". Nor may it carry text PostgreSQL refuses
    # (NUL) or cannot encode (a lone surrogate): that would be a database error, not a 400.
    if not isinstance(value, str):
        raise TypeError("a page token field that is not a string")
    text = value
    text.encode("utf-8")
    if "\x00" in text:
        raise ValueError("NUL in a page token")
    return text


def timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("naive timestamp")
    # In UTC, as the driver sends it; years 1 and 9999 may not survive (OverflowError).
    return value.astimezone(UTC)


def uuid(text: str) -> UUID:
    return UUID(text)
