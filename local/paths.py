"""Where the local stack keeps its state: .local/ at the repository root."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("CLINIC_STATE_DIR", ROOT / ".local"))
OPENAPI = ROOT / "infra" / "terraform" / "openapi.yaml"
MIGRATIONS = ROOT / "db" / "migrations"
# The web app's build output (`make web`), which the local gateway serves beside the API.
WEB_DIST = ROOT / "web" / "dist"
