"""The outbox of notices: what the award lifecycle has to tell a project (an award offered, started,
about to expire, expired; a reclaim coming and done; a budget half and four-fifths used; a target
missed), as rows that a sender delivers later (design note 0012). Flushes, never commits.

A notice is queued once: its ``key`` names what it is about (``reclaim_warning:award-3:period-2``), and
is unique, so a lifecycle step that runs twice, or two that race, queue it once. Its recipients are
the e-mail addresses its project's PI and members had when it was queued; a notice of no project (a
declared target missed, design note 0014) goes to the admins, then the reviewers. Delivery is at least once: a
sender that delivered but could not record it delivers again, so a receiver can drop repeats by the
notice's id. A failed delivery is tried again after a backoff, until ``max_attempts``; what failed
stays in ``last_error``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, case, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from gpucommons.store.base import Base, UtcDateTime, one_of
from gpucommons.store.tenancy import MembershipRow, ProjectRow, UserRow

NOTICE_KINDS = (
    "award_offered",
    "award_started",
    "award_expiring",
    "award_expired",
    "reclaim_warning",
    "reclaim_done",
    "budget_used",
    "target_missed",  # a declared target's closed period missed (``store/attainment.py``)
    "compute_threshold",  # training FLOPs crossed 50/80/100 % of 10^26 (``store/compute.py``)
)
RECIPIENT_SEPARATOR = ", "


class NoticeRow(Base):
    """One notice to a project's people (``project_id`` NULL: to the centre's staff), queued by the
    lifecycle and sent by a ``NoticeSender``: unsent while ``sent_at`` is NULL, next tried at
    ``next_attempt_at``."""

    __tablename__ = "notices"
    __table_args__ = (
        CheckConstraint(one_of("kind", NOTICE_KINDS), name="kind"),
        Index("ix_notices_unsent", "sent_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), nullable=True, index=True)
    award_id: Mapped[int | None] = mapped_column(ForeignKey("awards.id"), nullable=True, index=True)
    recipients: Mapped[str] = mapped_column(Text, default="")  # e-mail addresses, ", " between
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    @property
    def recipient_list(self) -> list[str]:
        return [r for r in self.recipients.split(RECIPIENT_SEPARATOR) if r]


@dataclass(frozen=True)
class NoticeDraft:
    """A notice before it is queued; ``about`` completes its key (a period, a level, an end date; a
    target and its period for a notice of no project)."""

    kind: str
    project_id: int | None
    award_id: int | None
    about: str
    subject: str
    body: str

    @property
    def key(self) -> str:
        if self.award_id is not None:
            parts = [self.kind, f"award-{self.award_id}", self.about]
        elif self.project_id is not None:
            parts = [self.kind, f"project-{self.project_id}", self.about]
        else:
            parts = [self.kind, self.about]
        return ":".join(part for part in parts if part)


def project_recipients(session: Session, project_id: int) -> list[str]:
    """The e-mail addresses of the project's PIs, then its members, each once."""
    query = (
        select(UserRow.email)
        .join(MembershipRow, MembershipRow.user_id == UserRow.id)
        .where(MembershipRow.project_id == project_id, UserRow.email.is_not(None))
        .order_by(case((MembershipRow.role == "pi", 0), else_=1), UserRow.id)
    )
    return list(dict.fromkeys(email for email in session.scalars(query) if email))


def staff_recipients(session: Session) -> list[str]:
    """The e-mail addresses of the admins, then the reviewers, each once."""
    query = (
        select(UserRow.email)
        .where(UserRow.role.in_(("admin", "reviewer")), UserRow.email.is_not(None))
        .order_by(case((UserRow.role == "admin", 0), else_=1), UserRow.id)
    )
    return list(dict.fromkeys(email for email in session.scalars(query) if email))


def queue_notice(session: Session, draft: NoticeDraft, now: datetime) -> NoticeRow | None:
    """Queue ``draft`` unless a notice with its key already is; returns the new row, else ``None``."""
    if session.scalar(select(NoticeRow.id).where(NoticeRow.key == draft.key)) is not None:
        return None
    recipients = (
        staff_recipients(session)
        if draft.project_id is None
        else project_recipients(session, draft.project_id)
    )
    row = NoticeRow(
        key=draft.key,
        kind=draft.kind,
        project_id=draft.project_id,
        award_id=draft.award_id,
        recipients=RECIPIENT_SEPARATOR.join(recipients),
        subject=draft.subject,
        body=draft.body,
        created_at=now,
        next_attempt_at=now,
        attempts=0,
    )
    session.add(row)
    session.flush()
    return row


def list_notices(
    session: Session, project_ids: set[int] | None = None, unsent: bool = False, limit: int = 500
) -> list[NoticeRow]:
    """The newest notices first (of ``project_ids`` only, when given; only the unsent, if asked)."""
    query = select(NoticeRow).order_by(NoticeRow.id.desc()).limit(limit)
    if project_ids is not None:
        query = query.where(NoticeRow.project_id.in_(project_ids))
    if unsent:
        query = query.where(NoticeRow.sent_at.is_(None))
    return list(session.scalars(query))


def due_notices(session: Session, now: datetime, max_attempts: int, limit: int = 100) -> list[NoticeRow]:
    """Unsent notices whose next attempt is due and that have attempts left, oldest first."""
    query = (
        select(NoticeRow)
        .where(
            NoticeRow.sent_at.is_(None),
            NoticeRow.next_attempt_at <= now,
            NoticeRow.attempts < max_attempts,
        )
        .order_by(NoticeRow.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def project_names(session: Session, project_ids: Iterable[int | None]) -> dict[int | None, str]:
    """Names of the given projects, for a sender's payload (a notice of no project has none)."""
    ids = {project_id for project_id in project_ids if project_id is not None}
    query = select(ProjectRow.id, ProjectRow.name).where(ProjectRow.id.in_(ids))
    return {project_id: name for project_id, name in session.execute(query)}


def mark_sent(session: Session, notice: NoticeRow, now: datetime) -> None:
    notice.attempts += 1
    notice.sent_at = now
    notice.last_error = None
    session.flush()


def mark_failed(session: Session, notice: NoticeRow, error: str, retry_at: datetime) -> None:
    """Record a failed attempt; it is tried again at ``retry_at`` while it has attempts left."""
    notice.attempts += 1
    notice.last_error = error[:1000]
    notice.next_attempt_at = retry_at
    session.flush()
