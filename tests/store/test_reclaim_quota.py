"""Regression: GPUs reclaimed from an award leave the scheduler's quota, on SQLite and PostgreSQL. An award
of 24 guaranteed GPUs used at a quarter (6 GPUs, one 8-GPU unit) keeps 8; the live snapshot's quota is 8."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from gpucommons.clusterfile import load_cluster
from gpucommons.policy.quota import nominal_quotas
from gpucommons.store import awards as award_repo
from gpucommons.store.calls import create_program
from gpucommons.store.state_store import LiveStore
from gpucommons.store.tenancy import create_institution, create_project

NOW = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def test_reclaimed_gpus_leave_the_schedulers_quota(session: Session) -> None:
    inst = create_institution(session, "Pohang Lab", "university", "non_capital")
    project = create_project(session, "lidar", inst.id)
    program = create_program(
        session,
        name="2026-call",
        model="H100",
        capacity_gpus=32,
        unit_gpus=8,
        duration_days=90,
        reclaim_below_utilization=0.5,
        reclaim_after_days=14,
    )
    started = NOW - timedelta(days=15)  # a full reclaim window has passed
    terms = award_repo.AwardTerms(project.id, program.id, guaranteed_gpus=24, starts_at=started)
    award = award_repo.create_award(session, terms, started)
    award_repo.activate_award(session, award.id, started)
    session.commit()
    cluster = load_cluster("demo")
    before = LiveStore(session, cluster).snapshot(NOW.timestamp())
    assert nominal_quotas(before, NOW.timestamp()) == {"lidar": 24}

    [record] = award_repo.reclaim_unused(session, NOW, {award.id: 0.25})
    session.commit()

    assert (record.reclaimed_gpus, award.guaranteed_gpus, award.status) == (16, 8, "active")
    after = LiveStore(session, cluster).snapshot(NOW.timestamp())
    assert after.awards is not None and [a.guaranteed_gpus for a in after.awards["lidar"]] == [8]
    assert nominal_quotas(after, NOW.timestamp()) == {"lidar": 8}
