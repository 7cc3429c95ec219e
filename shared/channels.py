"""What a channel is: a way a notice reaches the patient. Email (shared.mail) is the first.

shared.notify decides whether a notice is still true and records it; the channel says
where the patient is reached on it and sends there. Each task names its channel
(shared.outbox writes one per channel in NOTIFY_CHANNELS; notify.CHANNELS has them all).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from shared.mail import Notice
    from shared.settings import Settings


class MessageRejected(Exception):
    """Refused for good (an unknown address, say): recorded FAILED, never retried."""


class ChannelUnavailable(Exception):
    """The channel cannot take the message now: Cloud Tasks tries again later."""


class Connection(Protocol):
    def send_notice(self, notice: Notice) -> None:
        """Sends it to notice.recipient; raises MessageRejected or ChannelUnavailable."""


class Channel(Protocol):
    # What is down when the channel is unavailable, for the logs: "mail relay".
    carrier: str

    def address(self, contact: Mapping[str, Any]) -> str | None:
        """The patient's address on this channel from notify's message context (its
        patient_* columns); None: they have none, and nothing is sent."""

    def connect(self, settings: Settings) -> AbstractContextManager[Connection]:
        """Ready to send (connected, signed in) before notify locks anything: a slow
        channel must not hold up a patient's cancel or move."""
