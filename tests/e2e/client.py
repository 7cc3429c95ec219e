"""A small HTTP client for the e2e tests: tokens from the local key pair, JSON in and out."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests

from local.keys import make_token


class Caller:
    def __init__(self, api: Api, role: str, sub: uuid.UUID, email: str, name: str) -> None:
        self.api, self.role, self.id, self.email, self.name = api, role, sub, email, name
        self.token = make_token(role, sub, email, name, state=api.state)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.api.base + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, json=body, **kwargs)


class Api:
    def __init__(self, base: str, state: Path) -> None:
        self.base = base
        self.state = state
        self.anonymous = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.anonymous.get(self.base + path, timeout=30, **kwargs)

    def caller(self, role: str, sub: uuid.UUID | None = None, name: str | None = None) -> Caller:
        sub = sub or uuid.uuid4()
        return Caller(self, role, sub, f"{role}-{sub.hex[:10]}@example.com", name or f"Test {role.title()}")

    def admin(self) -> Caller:
        return self.caller("admin")

    def patient(self) -> Caller:
        return self.caller("patient")

    def doctor(self, timezone: str = "Europe/Berlin", specialty: str = "Testing") -> Caller:
        """A new doctor, created by an admin, and a caller signed in as them."""
        doctor_id = uuid.uuid4()
        caller = self.caller("doctor", doctor_id, name=f"Dr. {doctor_id.hex[:8]}")
        response = self.admin().post(
            "/doctors",
            {
                "id": str(doctor_id),
                "email": caller.email,
                "name": caller.name,
                "specialty": specialty,
                "timezone": timezone,
            },
        )
        assert response.status_code == 201, response.text
        return caller

    def publish(
        self, doctor: Caller, day: date | None = None, start: str = "09:00", end: str = "12:00", minutes: int = 30
    ) -> list[dict[str, Any]]:
        day = day or date.today() + timedelta(days=3)
        response = doctor.post(
            f"/doctors/{doctor.id}/slots",
            {"date": day.isoformat(), "start": start, "end": end, "slot_minutes": minutes},
        )
        assert response.status_code == 201, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items
