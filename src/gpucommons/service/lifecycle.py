"""The award lifecycle on a timer in the server (design note 0012): every ``GPUC_LIFECYCLE_INTERVAL_S``
one lifecycle step (``store/lifecycle.py``), and every ``GPUC_NOTICE_INTERVAL_S`` the delivery of due
notices through the configured sender, with a backoff after each failure.

Two servers on one database must not both run it, so the timer holds the lifecycle lease
(``store/lease.py``, row ``LIFECYCLE_LEASE_ID``): it takes or renews it each tick, and every transaction
it commits renews it in that transaction (``hold_lease``), so a timer whose lease was taken over stores
nothing more. ``POST /lifecycle/run`` runs a step through the same ``LifecycleRunner`` (the same holder,
taking turns on a lock), and is refused with 409 while another server holds the lease.

``now`` comes from the runner's ``clock`` (the app's clock, which tests move) or is passed to
``run_step``; the loop's own waits are real seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gpucommons.config import Settings
from gpucommons.engine.ports import Lease, LeaseLostError, new_holder
from gpucommons.errors import ConflictError
from gpucommons.notify import DeliveryError, Notice, NoticeSender, retry_delay_s
from gpucommons.notify.senders import build_sender
from gpucommons.store.base import utcnow
from gpucommons.store.lease import LIFECYCLE_LEASE_ID, acquire_lease, hold_lease, release_lease
from gpucommons.store.lifecycle import LifecycleOptions, LifecycleReport, run_lifecycle
from gpucommons.store.notices import NoticeRow, due_notices, mark_failed, mark_sent, project_names

log = logging.getLogger(__name__)
LEASE_TTL_S = 120.0


@dataclass(frozen=True)
class RunnerOptions:
    lifecycle_interval_s: float = 3600.0
    notice_interval_s: float = 30.0
    max_attempts: int = 8
    lifecycle: LifecycleOptions = field(default_factory=LifecycleOptions)
    lease_ttl_s: float = LEASE_TTL_S
    holder: str = field(default_factory=new_holder)

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerOptions:
        return cls(
            lifecycle_interval_s=settings.lifecycle_interval_s,
            notice_interval_s=settings.notice_interval_s,
            max_attempts=settings.notice_max_attempts,
            lifecycle=LifecycleOptions(expiry_warning_days=settings.notice_expiry_days),
        )


@dataclass(frozen=True)
class Delivery:
    """What one round of sending did."""

    sent: int = 0
    failed: int = 0


class LifecycleRunner:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        sender: NoticeSender | None,
        options: RunnerOptions,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions, self.sender, self.options, self.clock = sessions, sender, options, clock
        self._step_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._lease: Lease | None = None
        self._next_step_at: datetime | None = None

    def _take_lease(self) -> bool:
        with self.sessions() as session:
            lease = acquire_lease(
                session, self.options.holder, self.options.lease_ttl_s, lease_id=LIFECYCLE_LEASE_ID
            )
            session.commit()
        self._lease = lease
        return lease is not None

    def _fence(self, session: Session) -> None:
        if self._lease is None:
            raise LeaseLostError("this server holds no lifecycle lease")
        hold_lease(session, self._lease, self.options.lease_ttl_s, lease_id=LIFECYCLE_LEASE_ID)

    def run_step(self, now: datetime) -> LifecycleReport:
        """One lifecycle step at ``now``, committed under the lease; ``ConflictError`` while another
        server holds it."""
        with self._step_lock:
            if not self._take_lease():
                raise ConflictError("the award lifecycle runs on another server (it holds the lease)")
            try:
                with self.sessions() as session:
                    report = run_lifecycle(session, now, self.options.lifecycle)
                    self._fence(session)
                    session.commit()
            except IntegrityError:  # only a step whose lease ran out meanwhile can race another
                raise ConflictError("another lifecycle step stored the same changes first") from None
            self._next_step_at = now + timedelta(seconds=self.options.lifecycle_interval_s)
            return report

    def send_due(self, now: datetime) -> Delivery:
        """Send the notices due at ``now``, each recorded (sent, or failed and when to retry) in a
        transaction of its own under the lease. Without a sender, nothing is sent."""
        if self.sender is None:
            return Delivery()
        with self._send_lock:
            if not self._take_lease():
                return Delivery()
            with self.sessions() as session:
                due = due_notices(session, now, self.options.max_attempts)
                names = project_names(session, {row.project_id for row in due})
                notices = [_notice(row, names.get(row.project_id, "")) for row in due]
            sent = failed = 0
            for notice in notices:
                error = self._deliver(notice)
                with self.sessions() as session:
                    row = session.get(NoticeRow, notice.id)
                    if row is None or row.sent_at is not None:
                        continue
                    if error is None:
                        mark_sent(session, row, now)
                        sent += 1
                    else:
                        self._record_failure(row, error, now, session)
                        failed += 1
                    self._fence(session)
                    session.commit()
            return Delivery(sent, failed)

    def _deliver(self, notice: Notice) -> DeliveryError | None:
        assert self.sender is not None
        try:
            self.sender.send(notice)
        except DeliveryError as exc:
            log.warning("notice %d (%s) not sent by %s: %s", notice.id, notice.kind, self.sender.name, exc)
            return exc
        return None

    def _record_failure(self, row: NoticeRow, error: DeliveryError, now: datetime, session: Session) -> None:
        if error.permanent:
            row.attempts = max(row.attempts, self.options.max_attempts - 1)  # this failure is its last
        retry_at = now + timedelta(seconds=retry_delay_s(row.attempts + 1))
        mark_failed(session, row, str(error), retry_at)

    def tick(self) -> Delivery:
        """A step when one is due by the clock, then a round of sending."""
        now = self.clock()
        if self._next_step_at is None or now >= self._next_step_at:
            try:
                self.run_step(now)
            except ConflictError:  # another server runs the lifecycle; it sends too
                return Delivery()
        return self.send_due(now)

    def run(self, stop: threading.Event) -> None:
        """Tick every ``notice_interval_s`` seconds until ``stop`` is set, then give the lease back."""
        while not stop.is_set():
            try:
                self.tick()
            except OperationalError as exc:  # the database busy or gone for a moment: try again
                log.warning("lifecycle tick failed: %s", exc.orig)
            except Exception:
                log.exception("lifecycle tick failed")
            stop.wait(self.options.notice_interval_s)
        with self.sessions() as session:
            release_lease(session, self.options.holder, lease_id=LIFECYCLE_LEASE_ID)
            session.commit()


def _notice(row: NoticeRow, project: str) -> Notice:
    return Notice(
        id=row.id,
        kind=row.kind,
        project_id=row.project_id,
        project=project,
        award_id=row.award_id,
        recipients=tuple(row.recipient_list),
        subject=row.subject,
        body=row.body,
        created_at=row.created_at,
    )


def lifecycle_runner(app: FastAPI) -> LifecycleRunner:
    """The app's runner, built once from its settings, sessions and clock."""
    runner: LifecycleRunner | None = getattr(app.state, "lifecycle", None)
    if runner is None:
        settings: Settings = app.state.settings
        runner = LifecycleRunner(
            app.state.sessions, build_sender(settings), RunnerOptions.from_settings(settings), app.state.clock
        )
        app.state.lifecycle = runner
    return runner


def start_lifecycle_in_background(app: FastAPI) -> threading.Event:
    """Run the app's lifecycle timer on a daemon thread; set the returned event to stop it."""
    runner = lifecycle_runner(app)
    stop = threading.Event()
    threading.Thread(target=runner.run, args=(stop,), name="gpuc-lifecycle", daemon=True).start()
    return stop
