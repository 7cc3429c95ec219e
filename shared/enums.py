"""Every enumeration of the domain, defined once (the database's enum types match them)."""

from __future__ import annotations

from typing import Literal, get_args

# users.role; a new role is a value here, a row in shared/policy.py and a migration.
Role = Literal["patient", "doctor", "admin"]
# appointments.status
AppointmentStatus = Literal["BOOKED", "CANCELLED", "COMPLETED", "NO_SHOW"]
# The statuses PATCH /appointments/{id} sets (BOOKED is reached only by booking).
StatusChange = Literal["CANCELLED", "COMPLETED", "NO_SHOW"]
# audit_appointment.action: a status reached, or a move
AuditAction = Literal["BOOKED", "CANCELLED", "COMPLETED", "NO_SHOW", "RESCHEDULED"]
# notifications.kind: what a message tells the patient
NoticeKind = Literal["CONFIRMATION", "REMINDER", "CANCELLATION", "RESCHEDULED"]
# notifications.channel: how a notice reaches the patient (each one's Channel: notify.CHANNELS)
ChannelName = Literal["email"]

ROLES: tuple[Role, ...] = get_args(Role)
