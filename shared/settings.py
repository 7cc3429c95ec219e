"""Configuration: environment variables only, read once into one pydantic object.

Plain pydantic rather than pydantic-settings: the latter costs ~200 ms of import
time on every cold start for features (dotenv, CLI parsing) we do not use.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.enums import ChannelName

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_offsets(text: str) -> tuple[timedelta, ...]:
    """`24h,2h,90s` -> the reminder offsets before an appointment's start."""
    offsets = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        unit = part[-1]
        if unit not in _UNITS or not (part[:-1].isascii() and part[:-1].isdigit()):
            raise ValueError(f"bad reminder offset {part!r}: use e.g. 24h, 30m, 90s, 2d")
        offsets.append(timedelta(seconds=int(part[:-1]) * _UNITS[unit]))
    return tuple(sorted(set(offsets), reverse=True))


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # Database: DATABASE_URL locally; the Cloud SQL connector (IAM auth) in production.
    database_url: str | None = None
    instance_connection_name: str | None = None
    db_user: str | None = None
    db_name: str = "clinic"
    db_ip_type: str = "PRIVATE"
    # Requests a process serves at once, each on a thread of its own (shared/asgi.py);
    # THREADS, the name functions-framework gives it.
    threads: int = Field(default=8, ge=1, le=1000)
    # Connections per process: a thread holds at most one, so no more than threads.
    db_pool_size: int = Field(default=8, ge=1, le=100)
    db_connect_timeout: float = Field(default=5.0, gt=0)
    # Cap on any single statement so a stuck query cannot hold a request forever.
    db_statement_timeout_ms: int = Field(default=10_000, ge=100)

    # Production: the value the load balancer adds as X-Clinic-Edge. Set on slots, book
    # and cancel, which then refuse requests that did not come through it (and so
    # through Cloud Armor). Unset locally and on notify.
    edge_token: str | None = None

    # Browser origins (https://app.clinic.example) that may call slots, book and cancel,
    # comma-separated; "*" for any (the API takes bearer tokens, never cookies).
    cors_allowed_origins: tuple[str, ...] = ()

    # Cloud Tasks: TASKS_QUEUE is the full path projects/P/locations/L/queues/Q.
    tasks_queue: str | None = None
    tasks_emulator_host: str | None = None
    notify_url: str | None = None
    tasks_service_account: str | None = None
    tasks_dispatch_deadline_s: int = Field(default=60, ge=15, le=1800)
    # Must equal the queue's retry_config.max_attempts (Terraform feeds both).
    # 30 attempts, 10 s doubling to 600 s apart, span about 4 hours: a mail relay outage
    # shorter than that loses nothing.
    tasks_max_attempts: int = Field(default=30, ge=1)

    # The notify function verifies the OIDC token Cloud Tasks and Cloud Scheduler send.
    verify_oidc: bool = True
    oidc_audience: str | None = None
    # Where Google publishes the keys its OIDC tokens are signed with (tests serve their own).
    oidc_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    notify_invokers: tuple[str, ...] = ()
    # Notify runs behind Cloud Run IAM (no allUsers invoker): Cloud Run has checked the
    # token's signature, audience and expiry before the request arrives, and forwards
    # it with the signature replaced by SIGNATURE_REMOVED_BY_GOOGLE. Only then may such a
    # token be accepted; anywhere else it would be a token nobody signed.
    oidc_checked_by_cloud_run: bool = False

    # Pub/Sub domain events: PUBSUB_TOPIC is projects/P/topics/T.
    pubsub_topic: str | None = None
    pubsub_emulator_host: str | None = None

    # Email.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0
    mail_from: str = "Clinic <no-reply@clinic.example>"
    # The web app's address (https://clinic.example): each email links to the appointment
    # there (PUBLIC_URL/#/appointments/ID). Unset: no link.
    public_url: str | None = None

    reminder_offsets: tuple[timedelta, ...] = (timedelta(hours=24),)
    # The channels each notice goes out on (comma-separated): one task per channel.
    notify_channels: tuple[ChannelName, ...] = ("email",)

    # Upcoming BOOKED appointments (whoever booked them) a patient may hold and still book
    # themself, so that a few accounts cannot take every slot; an admin booking for a
    # patient is not capped.
    max_upcoming_appointments: int = Field(default=10, ge=1)
    # Bookings, cancellations and moves a patient may make of their own appointments in
    # any hour: each sends email and writes rows kept for good, so a script looping
    # book-cancel is stopped (409 too-many-changes) whatever addresses it comes from.
    max_changes_per_hour: int = Field(default=20, ge=1)
    # The waitlist (decision 0013): active entries a patient may hold, how far ahead a
    # freed slot must start to be offered, and how long an offer holds the slot.
    waitlist_max_entries: int = Field(default=3, ge=1, le=50)
    waitlist_lead_minutes: int = Field(default=120, ge=0, le=10_080)
    hold_minutes: float = Field(default=15, gt=0, le=1_440)

    @field_validator("reminder_offsets", mode="before")
    @classmethod
    def _offsets(cls, value: object) -> object:
        return parse_offsets(value) if isinstance(value, str) else value

    @field_validator("notify_invokers", "cors_allowed_origins", "notify_channels", mode="before")
    @classmethod
    def _invokers(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @classmethod
    def from_env(cls) -> Settings:
        """Each field from the upper-case environment variable of its name, when set."""
        values = {name: os.environ[name.upper()] for name in cls.model_fields if name.upper() in os.environ}
        return cls.model_validate(values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
