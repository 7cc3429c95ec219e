"""Domain errors. Services raise them; shared.web maps each to problem+json once."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    title = "Bad request"
    type_ = "about:blank"

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors

    @property
    def public_detail(self) -> str:
        """What the caller is told; `detail` is what the logs say."""
        return self.detail

    @property
    def retry_after(self) -> int | None:
        """Seconds for the Retry-After header, if any: a 503 is worth trying again shortly."""
        return 2 if self.status == 503 else None


class BadRequest(DomainError):
    status, title, type_ = 400, "Bad request", "/problems/bad-request"


class Unauthenticated(DomainError):
    status, title, type_ = 401, "Unauthenticated", "/problems/unauthenticated"


class Forbidden(DomainError):
    status, title, type_ = 403, "Forbidden", "/problems/forbidden"


class NotFound(DomainError):
    status, title, type_ = 404, "Not found", "/problems/not-found"


class MethodNotAllowed(DomainError):
    status, title, type_ = 405, "Method not allowed", "/problems/method-not-allowed"

    def __init__(self, detail: str, allow: list[str]) -> None:
        super().__init__(detail)
        self.allow = allow  # the methods the path does take: the Allow header


class Conflict(DomainError):
    status, title, type_ = 409, "Conflict", "/problems/conflict"


class SlotTaken(Conflict):
    title, type_ = "Slot taken", "/problems/slot-taken"


class SlotHeld(Conflict):
    title, type_ = "Slot held", "/problems/slot-held"


class OfferEnded(Conflict):
    title, type_ = "Offer ended", "/problems/offer-ended"


class AlreadyBookedInRange(Conflict):
    """A waitlist entry would be over at once: its patient already holds an appointment
    with that doctor in its range (an entry ends when they book one)."""

    title, type_ = "Already booked in range", "/problems/already-booked-in-range"


class TooManyEntries(Conflict):
    title, type_ = "Too many waitlist entries", "/problems/too-many-waitlist-entries"


class PatientBusy(Conflict):
    title, type_ = "Overlapping appointment", "/problems/overlapping-appointment"


class TooManyUpcoming(Conflict):
    title, type_ = "Too many upcoming appointments", "/problems/too-many-upcoming"


class SlotOverlap(Conflict):
    title, type_ = "Overlapping slot", "/problems/overlapping-slot"


class TransitionNotAllowed(Conflict):
    title, type_ = "Transition not allowed", "/problems/transition-not-allowed"


class TooManyChanges(Conflict):
    """A 409, not a 429: the load balancer replaces every 429 body (Cloud Armor's rate
    limit) with its own, which would hide when the patient may change again."""

    title, type_ = "Too many changes", "/problems/too-many-changes"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self._retry_after = retry_after

    @property
    def retry_after(self) -> int | None:
        return self._retry_after


class PayloadTooLarge(DomainError):
    status, title, type_ = 413, "Payload too large", "/problems/payload-too-large"


class UnsupportedMediaType(DomainError):
    status, title, type_ = 415, "Unsupported media type", "/problems/unsupported-media-type"


class Unprocessable(DomainError):
    status, title, type_ = 422, "Unprocessable content", "/problems/unprocessable"


class DatabaseUnavailable(DomainError):
    status, title, type_ = 503, "Service unavailable", "/problems/unavailable"

    @property
    def public_detail(self) -> str:
        # Hosts, ports and driver messages go to the logs, not to callers.
        return "the database is unavailable; try again shortly"


class Busy(DomainError):
    """A lock or statement waited too long, or a deadlock was broken: nothing was
    changed, and the same request may well succeed in a moment."""

    status, title, type_ = 503, "Service unavailable", "/problems/busy"

    @property
    def public_detail(self) -> str:
        return "this record is busy; try again shortly"


class Deadlock(Busy):
    """The database broke a deadlock (or a serialization failure) by rolling this
    transaction back whole. Running it again is safe, and usually succeeds at once:
    shared.unit_of_work.run_and_commit does so before this reaches a caller."""
