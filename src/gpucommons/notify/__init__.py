"""Sending notices: the ``NoticeSender`` protocol a sender implements, the ``Notice`` it is handed and
the backoff between failed attempts. The senders are ``smtp.py`` (mail through ``smtplib``) and
``webhook.py`` (a JSON POST, optionally signed), picked by name in ``senders.py``; the outbox they
drain is ``store/notices.py`` (design note 0012).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

RETRY_FIRST_S = 60.0
RETRY_MAX_S = 3600.0


@dataclass(frozen=True)
class Notice:
    """One notice as a sender sees it: who it is for (``recipients``: e-mail addresses) and what it
    says. ``id`` is the outbox's, the same on every attempt, so a receiver can drop repeats."""

    id: int
    kind: str
    project_id: int | None  # None: a notice to the centre's staff (a declared target missed)
    project: str
    award_id: int | None
    recipients: tuple[str, ...]
    subject: str
    body: str
    created_at: datetime


class DeliveryError(Exception):
    """A notice could not be delivered. ``permanent``: trying again cannot help (no recipient has an
    address), so the outbox gives up on it at once."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class NoticeSender(Protocol):
    """Delivers one notice or raises ``DeliveryError``; any other exception is a bug in the sender."""

    @property
    def name(self) -> str:
        """The sender's name in ``GPUC_NOTICE_SENDER``, for logs."""
        ...

    def send(self, notice: Notice) -> None: ...


def retry_delay_s(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: doubling from a minute, at most an
    hour."""
    return min(RETRY_FIRST_S * 2.0 ** max(attempts - 1, 0), RETRY_MAX_S)
