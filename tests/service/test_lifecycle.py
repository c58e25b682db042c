"""The award lifecycle end to end, on SQLite and PostgreSQL, on a simulated clock: a program through
offers and starts, an expiry warning, a partial reclaim after a warning, the re-offer of the freed
servers to the next-ranked proposal, and expiry; the notices as a real local SMTP server received
them; the timer under its lease; and the webhook sender against a real local HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gpucommons.errors import ConflictError
from gpucommons.notify.smtp import SmtpSender
from gpucommons.notify.webhook import WebhookSender
from gpucommons.service.lifecycle import LifecycleRunner, RunnerOptions
from gpucommons.store import awards
from gpucommons.store.awards import AwardRow
from gpucommons.store.base import make_engine, session_factory
from gpucommons.store.lease import LIFECYCLE_LEASE_ID, SchedulerLeaseRow
from gpucommons.store.lifecycle import LifecycleReport
from gpucommons.store.notices import NoticeRow
from gpucommons.store.usage import balances
from tests.components import wait_until
from tests.lifecycle_world import EMAILS, T0, Call, day, meter, seed_call
from tests.notify_servers import MailServer, mail_server, webhook_server

SENDER = "gpucommons@commons.example"


@pytest.fixture
def sessions(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield session_factory(engine)
    engine.dispose()


@dataclass
class Run:
    """A runner delivering to a mail server, stepping at explicit times."""

    runner: LifecycleRunner
    sessions: sessionmaker[Session]
    mail: MailServer

    def step(self, at: datetime) -> LifecycleReport:
        report = self.runner.run_step(at)
        self.runner.send_due(at)
        return report

    def new_mail(self, since: int) -> list[tuple[str, str, tuple[str, ...]]]:
        """(kind, project in the subject, envelope recipients) of the mail received after ``since``."""
        return [
            (
                str(m.message["X-Gpuc-Kind"]),
                str(m.message["Subject"]).split("project ")[1].split(":")[0],
                m.rcpt_tos,
            )
            for m in self.mail.received[since:]
        ]

    def award(self, award_id: int) -> AwardRow:
        with self.sessions() as s:
            row = s.get(AwardRow, award_id)
            assert row is not None
            return row


def test_a_program_through_offer_reclaim_reoffer_and_expiry(sessions: sessionmaker[Session]) -> None:
    with mail_server() as mail:
        runner = LifecycleRunner(sessions, SmtpSender(mail.host, mail.port, SENDER), RunnerOptions())
        run = Run(runner, sessions, mail)
        with sessions() as s:
            call = seed_call(s)
            alpha, beta = awards.auto_award(s, call.program_id, T0)
            s.commit()
        assert (alpha.guaranteed_gpus, beta.guaranteed_gpus) == (16, 16)

        # Offered at once; started once an admin activated them.
        assert run.step(T0).offered == []
        assert run.new_mail(0) == [
            ("award_offered", "alpha", EMAILS["alpha"]),
            ("award_offered", "beta", EMAILS["beta"]),
        ]
        with sessions() as s:
            for award in (alpha, beta):
                awards.activate_award(s, award.id, T0)
            s.commit()
        run.step(T0 + timedelta(hours=1))
        assert [kind for kind, _, _ in run.new_mail(2)] == ["award_started", "award_started"]

        # alpha trains on all 16 GPUs for 22 days; beta uses 8 GPUs for 3 days.
        with sessions() as s:
            meter(s, call, "alpha", alpha.id, 16, day(0.5), timedelta(days=22))
            meter(s, call, "beta", beta.id, 8, day(1), timedelta(days=3))
            s.commit()

        # The first period ends on day 30; its warning is due from day 23, for beta only
        # (576 of 8,832 GPU-hours planned by then: under 20 %, so 80 % of 16 GPUs, one server).
        assert run.step(day(22.9)).notices == []
        warned = run.step(day(23))
        assert len(warned.notices) == 1 and warned.reclaims == []
        assert run.new_mail(4) == [("reclaim_warning", "beta", EMAILS["beta"])]
        warning = mail.received[4].message
        assert "7% of the GPU-hours planned" in warning.get_content()
        assert "80% of what remains, 8 guaranteed GPUs" in warning.get_content()
        assert run.award(beta.id).guaranteed_gpus == 16

        # Day 30: beta loses one server (alpha used 73 % of plan: nothing), and the next-ranked
        # unfunded proposal, gamma's for 8 GPUs, is offered it; delta's (ranked lower) still waits.
        done = run.step(day(30))
        [reclaim] = done.reclaims
        assert (reclaim.award_id, reclaim.reclaimed_gpus, reclaim.period) == (beta.id, 8, 1)
        assert reclaim.utilization == pytest.approx(576 / (16 * 30 * 24))
        [gamma_id] = done.offered
        assert run.new_mail(5) == [
            ("reclaim_done", "beta", EMAILS["beta"]),
            ("award_offered", "gamma", EMAILS["gamma"]),
        ]
        beta_now = run.award(beta.id)
        assert (beta_now.guaranteed_gpus, beta_now.reclaimed_gpus, beta_now.status) == (8, 8, "active")
        gamma = run.award(gamma_id)
        assert (gamma.project_id, gamma.guaranteed_gpus, gamma.status) == (
            call.projects["gamma"],
            8,
            "pending",
        )
        assert gamma.ends_at == day(30) + timedelta(days=120)

        # The same step again changes nothing.
        again = run.step(day(30))
        assert (again.expired, again.reclaims, again.offered, again.notices) == ([], [], [], [])
        with sessions() as s:
            awards.activate_award(s, gamma_id, day(30))
            assert awards.committed_gpus(s, call.program_id) == 32
            s.commit()
        run.step(day(31))
        assert run.new_mail(7) == [("award_started", "gamma", EMAILS["gamma"])]

        # alpha keeps training; 14 days before the end both first awards are warned.
        with sessions() as s:
            meter(s, call, "alpha", alpha.id, 16, day(23), timedelta(days=77))
            s.commit()
        ending = run.step(day(106))
        assert ending.reclaims == []  # alpha at 93 % of plan; beta's 80 % of 8 GPUs is under a server
        assert run.new_mail(8) == [
            ("award_expiring", "alpha", EMAILS["alpha"]),
            ("award_expiring", "beta", EMAILS["beta"]),
        ]

        # Day 120: both expire; gamma's award runs on.
        end = run.step(day(120))
        assert end.expired == [alpha.id, beta.id]
        assert run.new_mail(10) == [
            ("award_expired", "alpha", EMAILS["alpha"]),
            ("award_expired", "beta", EMAILS["beta"]),
        ]
        assert [run.award(i).status for i in (alpha.id, beta.id, gamma_id)] == [
            "expired",
            "expired",
            "active",
        ]
        _check_books(sessions, call, alpha.id, beta.id, gamma_id)
        _check_mail_headers(mail, alpha.id)


def _check_books(sessions: sessionmaker[Session], call: Call, alpha: int, beta: int, gamma: int) -> None:
    with sessions() as s:
        used = {b.award_id: b.gpu_hours_used for b in balances(s, None)}
        assert used == pytest.approx({alpha: 16 * 24 * (22 + 77), beta: 8 * 24 * 3, gamma: 0.0})
        records = [
            (r.award_id, r.reclaimed_gpus, r.reclaimed_gpu_hours, r.period) for r in awards.list_reclaims(s)
        ]
        assert records == [(beta, 8, 0.0, 1)]
        notices = list(s.scalars(select(NoticeRow).order_by(NoticeRow.id)))
        assert len(notices) == 12
        assert all(n.sent_at is not None and n.attempts == 1 and n.last_error is None for n in notices)
        assert call.projects["delta"] not in {n.project_id for n in notices}


def _check_mail_headers(mail: MailServer, alpha: int) -> None:
    first = mail.received[0].message
    assert first["From"] == SENDER
    assert first["To"] == ", ".join(EMAILS["alpha"])
    assert first["Subject"] == f"[gpucommons] award {alpha} of project alpha: offered"
    assert "16 guaranteed H100 GPUs" in first.get_content()
    ids = [m.message["X-Gpuc-Notice"] for m in mail.received]
    assert len(set(ids)) == len(ids)  # each notice delivered once


class Clock:
    """A movable clock that counts its readings: the timer reads it once at the start of each tick."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return self.now


def test_the_timer_steps_by_its_clock_under_the_lease(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        call = seed_call(s)
        awards.auto_award(s, call.program_id, T0)
        s.commit()
    clock = Clock(T0)
    options = RunnerOptions(lifecycle_interval_s=86_400.0, notice_interval_s=0.01)
    with mail_server() as mail:
        timer = LifecycleRunner(sessions, SmtpSender(mail.host, mail.port, SENDER), options, clock)
        stop = threading.Event()
        thread = threading.Thread(target=timer.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_until(lambda: len(mail.received) == 2, 10.0, lambda: f"offers mailed: {mail.kinds()}")
            # A second server's runner is refused the lease and does nothing.
            other = LifecycleRunner(
                sessions, SmtpSender(mail.host, mail.port, SENDER), RunnerOptions(), clock
            )
            with pytest.raises(ConflictError, match="another server"):
                other.run_step(T0)
            with sessions() as s:
                for award in awards.list_awards(s):
                    awards.activate_award(s, award.id, T0)
                s.commit()
            clock.now = day(0.5)  # not a day after the last step: ticks send, but no step runs
            reads = clock.reads
            wait_until(lambda: clock.reads >= reads + 2, 10.0, "two more ticks")
            assert mail.kinds() == ["award_offered", "award_offered"]
            clock.now = day(1)
            wait_until(lambda: len(mail.received) == 4, 10.0, lambda: f"mail so far: {mail.kinds()}")
            assert mail.kinds()[2:] == ["award_started", "award_started"]
        finally:
            stop.set()
            thread.join(10.0)
    assert not thread.is_alive()
    with sessions() as s:
        lease = s.get(SchedulerLeaseRow, LIFECYCLE_LEASE_ID)
        assert lease is not None and lease.holder == ""  # given back on stop


def test_the_webhook_gets_signed_json_and_a_failure_is_retried(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        call = seed_call(s)
        [alpha, _beta] = awards.auto_award(s, call.program_id, T0)
        s.commit()
    with webhook_server(statuses=[500]) as hook:
        runner = LifecycleRunner(sessions, WebhookSender(hook.url, "s3cret"), RunnerOptions())
        runner.run_step(T0)
        first = runner.send_due(T0)
        assert (first.sent, first.failed) == (1, 1)  # the first POST got a 500
        with sessions() as s:
            failed = s.scalars(select(NoticeRow).where(NoticeRow.sent_at.is_(None))).one()
            assert (failed.attempts, failed.next_attempt_at) == (1, T0 + timedelta(seconds=60))
            assert "answered 500" in (failed.last_error or "")
        assert runner.send_due(T0 + timedelta(seconds=59)).sent == 0  # not due yet
        assert runner.send_due(T0 + timedelta(seconds=60)).sent == 1
        assert runner.send_due(T0 + timedelta(hours=1)).sent == 0  # nothing twice
    assert len(hook.posts) == 3
    post = hook.posts[0]
    assert post.path == "/hooks/gpuc"
    assert post.headers["content-type"] == "application/json"
    want = "sha256=" + hmac.new(b"s3cret", post.body, hashlib.sha256).hexdigest()
    assert post.headers["x-gpuc-signature"] == want
    body = json.loads(post.body)
    assert body == {
        "id": int(post.headers["x-gpuc-notice"]),
        "kind": "award_offered",
        "project_id": call.projects["alpha"],
        "project": "alpha",
        "award_id": alpha.id,
        "recipients": list(EMAILS["alpha"]),
        "subject": f"[gpucommons] award {alpha.id} of project alpha: offered",
        "body": body["body"],
        "created_at": T0.isoformat(),
    }
    assert "16 guaranteed H100 GPUs" in body["body"]
    assert hook.posts[2].headers["x-gpuc-notice"] == hook.posts[0].headers["x-gpuc-notice"]  # the retry


def test_a_notice_nobody_can_receive_by_mail_is_given_up_at_once(sessions: sessionmaker[Session]) -> None:
    """delta's PI has no address: the notice is kept, with the reason, and not tried again."""
    with sessions() as s:
        call = seed_call(s)
        awards.create_award(
            s, awards.AwardTerms(call.projects["delta"], call.program_id, gpu_hours_budget=10), T0
        )
        s.commit()
    with mail_server() as mail:
        runner = LifecycleRunner(
            sessions, SmtpSender(mail.host, mail.port, SENDER), RunnerOptions(max_attempts=5)
        )
        runner.run_step(T0)
        assert (runner.send_due(T0).failed, runner.send_due(T0 + timedelta(days=1)).failed) == (1, 0)
        assert mail.received == []
    with sessions() as s:
        notice = s.scalars(select(NoticeRow)).one()
        assert (notice.recipients, notice.attempts, notice.sent_at) == ("", 5, None)
        assert "no PI or member with an e-mail address" in (notice.last_error or "")
