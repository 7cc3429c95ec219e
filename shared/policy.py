"""Who may do what: one table (role -> actions and on whose things) and one authorise().

No other module looks at a caller's role. A new role is a value of enums.Role and a
row here; a new feature (a waitlist: join, leave, accept an offer) adds actions and
grants here, and its service calls authorise() like the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from uuid import UUID

from shared.auth import Caller
from shared.enums import Role
from shared.errors import Forbidden


class Action(Enum):
    BOOK = "book an appointment"
    HOLD_APPOINTMENTS = "hold appointments of their own"  # be the patient of a booking
    BOOK_PAST_UPCOMING_CAP = "book past the cap on upcoming appointments"
    CHANGE_PAST_HOURLY_LIMIT = "book or move past the hourly limit of changes"
    SEE_APPOINTMENT = "see an appointment"
    MOVE = "move an appointment"
    CANCEL = "cancel an appointment"
    CANCEL_STARTED = "cancel an appointment that has started"
    RECORD_OUTCOME = "record what became of an appointment"  # appointments.OUTCOMES
    REGISTER_PATIENT = "register a patient"
    FIND_PATIENTS = "search the patients"
    SEE_PATIENT = "see a patient"
    SEE_PATIENTS_BOOKED_WITH_THEM = "see the patients who booked them"
    CREATE_DOCTOR = "create a doctor"
    PUBLISH_AVAILABILITY = "publish a doctor's availability"
    JOIN_WAITLIST = "join a waitlist"
    SEE_WAITLIST_ENTRY = "see a waitlist entry"
    LEAVE_WAITLIST = "leave a waitlist"
    ANSWER_OFFER = "accept or decline a waitlist offer"


class Scope(Enum):
    OWN = "their own"  # a thing of which the caller is an owner (its patient, its doctor)
    ANY = "anyone's"


OWN, ANY = Scope.OWN, Scope.ANY

GRANTS: dict[Role, dict[Action, Scope]] = {
    "patient": {
        Action.BOOK: OWN,
        Action.HOLD_APPOINTMENTS: OWN,
        Action.SEE_APPOINTMENT: OWN,
        Action.MOVE: OWN,
        Action.CANCEL: OWN,
        Action.REGISTER_PATIENT: OWN,
        Action.SEE_PATIENT: OWN,
        Action.JOIN_WAITLIST: OWN,
        Action.SEE_WAITLIST_ENTRY: OWN,
        Action.LEAVE_WAITLIST: OWN,
        Action.ANSWER_OFFER: OWN,
    },
    "doctor": {
        Action.CHANGE_PAST_HOURLY_LIMIT: ANY,
        Action.SEE_APPOINTMENT: OWN,
        Action.MOVE: OWN,
        Action.CANCEL: OWN,
        Action.CANCEL_STARTED: OWN,
        Action.RECORD_OUTCOME: OWN,
        Action.PUBLISH_AVAILABILITY: OWN,
        Action.SEE_PATIENTS_BOOKED_WITH_THEM: OWN,
        Action.SEE_WAITLIST_ENTRY: OWN,  # the entries for them
    },
    "admin": {
        Action.BOOK: ANY,
        Action.BOOK_PAST_UPCOMING_CAP: ANY,
        Action.CHANGE_PAST_HOURLY_LIMIT: ANY,
        Action.SEE_APPOINTMENT: ANY,
        Action.MOVE: ANY,
        Action.CANCEL: ANY,
        Action.CANCEL_STARTED: ANY,
        Action.RECORD_OUTCOME: ANY,
        Action.REGISTER_PATIENT: ANY,
        Action.FIND_PATIENTS: ANY,
        Action.SEE_PATIENT: ANY,
        Action.CREATE_DOCTOR: ANY,
        Action.PUBLISH_AVAILABILITY: ANY,
        Action.JOIN_WAITLIST: ANY,
        Action.SEE_WAITLIST_ENTRY: ANY,
        Action.LEAVE_WAITLIST: ANY,
        Action.ANSWER_OFFER: ANY,
    },
}


def scope(caller: Caller, action: Action) -> Scope | None:
    """How far the caller's grant for `action` reaches; None: not at all."""
    return GRANTS[caller.role].get(action)


def covers_anyone(caller: Caller, action: Action) -> bool:
    """Whether the caller may do `action` on anyone's things, not only their own."""
    return scope(caller, action) is ANY


def allows(caller: Caller, action: Action, owners: Iterable[UUID] | None = None) -> bool:
    """Whether the caller may do `action` (on a thing owned by `owners`, if given)."""
    granted = scope(caller, action)
    if granted is None:
        return False
    return granted is ANY or owners is None or caller.id in set(owners)


def authorise(caller: Caller, action: Action, owners: Iterable[UUID] | None = None) -> None:
    """Raises Forbidden unless the caller may do `action` (on a thing owned by `owners`)."""
    if scope(caller, action) is None:
        roles = [role for role, grants in GRANTS.items() if action in grants]
        raise Forbidden(f"to {action.value} needs the role {' or '.join(roles)}")
    if not allows(caller, action, owners):
        raise Forbidden(f"a {caller.role} may {action.value} only for themself")
