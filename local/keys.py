"""The local identity provider: an RSA key pair in .local/jwt/ and RS256 tokens from it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.paths import STATE

ISSUER = "https://clinic.local/issuer"
AUDIENCE = "clinic-local"
KEY_ID = "clinic-local-1"


def key_dir(state: Path = STATE) -> Path:
    return state / "jwt"


def ensure_keys(state: Path = STATE) -> Path:
    """Creates the key pair and its JWKS once; returns the JWKS path."""
    folder = key_dir(state)
    private_path, jwks_path = folder / "private.pem", folder / "jwks.json"
    if private_path.exists() and jwks_path.exists():
        return jwks_path
    folder.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    private_path.chmod(0o600)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": KEY_ID, "use": "sig", "alg": "RS256"})
    jwks_path.write_text(json.dumps({"keys": [public]}, indent=2))
    return jwks_path


def make_token(
    role: str,
    sub: UUID | str,
    email: str,
    name: str | None = None,
    *,
    ttl: int = 3600,
    state: Path = STATE,
    extra: dict[str, Any] | None = None,
) -> str:
    ensure_keys(state)
    private = (key_dir(state) / "private.pem").read_bytes()
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(sub),
        "email": email,
        # As Identity Platform sets it once the user has confirmed the address.
        "email_verified": True,
        "role": role,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
    if name:
        claims["name"] = name
    claims.update(extra or {})
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": KEY_ID})
