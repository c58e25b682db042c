"""A job marked sovereign at submission: stored, handed to the policy as sovereign whether it waits or
runs, and migration 0003 adds the column without touching the jobs (or their usage) already stored."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from gpucommons.clusterfile import load_cluster
from gpucommons.store.base import downgrade, make_engine, session_factory, upgrade
from gpucommons.store.jobs import AllocationRow, JobRequest, JobRow, submit_job
from gpucommons.store.state_store import LiveStore
from gpucommons.store.tenancy import create_institution, create_project, create_user
from gpucommons.store.usage import UsageRow

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@contextmanager
def opened(url: str) -> Iterator[Session]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _seed(url: str) -> tuple[int, int]:
    """A project with one sovereign and one ordinary job, the ordinary one with a usage segment."""
    with opened(url) as s:
        inst = create_institution(s, "KISTI", "research_institute", "non_capital")
        project = create_project(s, "weather", inst.id)
        user = create_user(s, "kim")
        cluster = load_cluster("demo")
        request = JobRequest(gpus=2, command=["true"], time_limit="10m", sovereign=True)
        sovereign, _ = submit_job(s, cluster, project.id, user.id, request, NOW)
        plain, _ = submit_job(s, cluster, project.id, user.id, JobRequest(gpus=1, command=["true"]), NOW)
        s.add(
            UsageRow(
                job_id=plain.id,
                project_id=project.id,
                started_at=NOW,
                ended_at=NOW + timedelta(hours=1),
                gpus=1,
                model="H100",
                gpu_hours=1.0,
                energy_kwh=0.7,
                cost_krw=0.0,
                co2_kg=0.3,
                flops=1e18,
            )
        )
        s.commit()
        return sovereign.id, plain.id


def test_sovereign_job_reaches_the_policy_pending_and_running(migrated_url: str) -> None:
    sovereign, plain = _seed(migrated_url)
    cluster = load_cluster("demo")
    with opened(migrated_url) as s:
        row = s.get(JobRow, sovereign)
        assert row is not None and row.sovereign
        snapshot = LiveStore(s, cluster).snapshot(NOW.timestamp())
        assert {p.job.id: p.job.sovereign for p in snapshot.pending} == {sovereign: True, plain: False}
        row.state, row.started_at, row.backend_ref = "running", NOW, "ref"
        s.add_all(
            AllocationRow(job_id=sovereign, node_index=0, node_name="h100-1", gpu_index=g) for g in (0, 1)
        )
        s.flush()
        snapshot = LiveStore(s, cluster).snapshot(NOW.timestamp())
        assert snapshot.running[sovereign].job.sovereign
        assert [p.job.id for p in snapshot.pending] == [plain]


def test_migration_0003_adds_and_drops_the_column_keeping_the_rows(migrated_url: str) -> None:
    sovereign, plain = _seed(migrated_url)
    downgrade(migrated_url, "0002")
    engine = make_engine(migrated_url)
    try:
        assert "sovereign" not in {c["name"] for c in inspect(engine).get_columns("jobs")}
    finally:
        engine.dispose()
    upgrade(migrated_url)
    with opened(migrated_url) as s:
        rows = {r.id: r.sovereign for r in s.scalars(select(JobRow))}
        assert rows == {sovereign: False, plain: False}  # stored before the column: not sovereign
        assert [u.job_id for u in s.scalars(select(UsageRow))] == [plain]
