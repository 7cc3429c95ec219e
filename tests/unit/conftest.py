"""Fixtures for the gateway's unit tests: a key pair in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import keys
from local.gateway import Verifier


@pytest.fixture
def key_state(tmp_path: Path) -> Path:
    keys.ensure_keys(tmp_path)
    return tmp_path


@pytest.fixture
def verifier(key_state: Path) -> Verifier:
    return Verifier(keys.ISSUER, keys.key_dir(key_state) / "jwks.json", [keys.AUDIENCE])
