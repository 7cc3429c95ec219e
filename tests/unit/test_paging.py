"""shared/paging.py: opaque keyset tokens; anything the API did not issue is a 400."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from shared import paging
from shared.errors import BadRequest

FIELDS = {"start": paging.timestamp, "id": paging.uuid}


def raw_token(payload: object) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def test_round_trip() -> None:
    start, ident = datetime(2027, 3, 14, 6, 30, tzinfo=UTC), uuid4()
    token = paging.encode({"start": start.isoformat(), "id": ident})
    assert "=" not in token and "/" not in token and "+" not in token
    assert paging.decode(token, FIELDS) == {"start": start, "id": ident}


def test_no_token_is_page_one() -> None:
    assert paging.decode(None, FIELDS) is None


def test_padding_is_optional() -> None:
    token = paging.encode({"after": "2027-01-01T00:00:00+00:00"})
    padded = token + "=" * (-len(token) % 4)
    assert paging.decode(padded, {"after": paging.timestamp}) == paging.decode(token, {"after": paging.timestamp})


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not a token",
        "%%%%",
        "////",
        raw_token("not json"),
        raw_token("[1, 2]"),
        raw_token("null"),
        raw_token("42"),
        raw_token({}),
        raw_token({"start": "2027-01-01T00:00:00+00:00"}),  # a field missing
        raw_token({"start": "2027-01-01T00:00:00+00:00", "id": str(uuid4()), "x": 1}),  # one too many
        raw_token({"start": "yesterday", "id": str(uuid4())}),
        raw_token({"start": "2027-01-01T00:00:00", "id": str(uuid4())}),  # naive
        raw_token({"start": "2027-01-01T00:00:00+00:00", "id": "not-a-uuid"}),
        raw_token({"start": "2027-01-01T00:00:00+00:00", "id": None}),
        raw_token({"start": ["2027"], "id": str(uuid4())}),
        # Instants a database driver cannot express in UTC.
        raw_token({"start": "0001-01-01T00:00:00+05:00", "id": str(uuid4())}),
        raw_token({"start": "9999-12-31T23:59:59-05:00", "id": str(uuid4())}),
        # Text PostgreSQL refuses (NUL) or cannot encode (a lone surrogate).
        raw_token({"start": "2027-01-01T00:00:00+00:00\u0000", "id": str(uuid4())}),
        raw_token('{"start": "2027-01-01T00:00:00+00:00", "id": "\\ud800"}'),
        base64.urlsafe_b64encode(b"\xff\xfe\x00garbage").decode(),
    ],
)
def test_tokens_the_api_did_not_issue_are_a_bad_request(token: str) -> None:
    with pytest.raises(BadRequest):
        paging.decode(token, FIELDS)


@pytest.mark.parametrize("name", ["bad\u0000name", "\ud800", "x\udfff"])
def test_text_positions_that_the_database_cannot_store_are_refused(name: str) -> None:
    token = raw_token(json.dumps({"name": name, "id": str(uuid4())}))
    with pytest.raises(BadRequest):
        paging.decode(token, {"name": str, "id": paging.uuid})


@pytest.mark.parametrize("name", [None, 42, True, ["Dr. A"], {"n": 1}])
def test_a_text_position_that_is_not_text_is_refused(name: object) -> None:
    # str() would read a forged null as the name "None" and page on from there.
    token = raw_token({"name": name, "id": str(uuid4())})
    with pytest.raises(BadRequest):
        paging.decode(token, {"name": str, "id": paging.uuid})


def test_converters() -> None:
    assert paging.timestamp("2027-03-14T07:00:00+01:00") == datetime(2027, 3, 14, 6, tzinfo=UTC)
    with pytest.raises(ValueError, match="naive"):
        paging.timestamp("2027-03-14T07:00:00")
    assert paging.uuid("6b1f5c2e-0000-4000-8000-000000000000") == UUID("6b1f5c2e-0000-4000-8000-000000000000")
