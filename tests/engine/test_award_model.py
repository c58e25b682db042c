"""An award pays for one accelerator model, so its jobs run on that model only (the fixture's award is
for H100 on the demo cluster, which also has A100 nodes)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from gpucommons.clusterfile import load_cluster
from gpucommons.policy.constraints import Commons
from gpucommons.policy.cycle import schedule
from gpucommons.policy.registry import build_policy
from gpucommons.store.jobs import AllocationRow, JobRequest, JobRow, submit_job
from gpucommons.store.state_store import LiveStore
from tests.engine.conftest import World

pytestmark = pytest.mark.timeout(90)


def _submit(world: World, models: tuple[str, ...], gpus: int = 1) -> int:
    with world.sessions() as session:
        request = JobRequest(gpus=gpus, command=["true"], models=models, time_limit="10m")
        row, _ = submit_job(
            session, load_cluster("demo"), world.project_id, world.user_id, request, datetime.now(UTC)
        )
        session.commit()
        return row.id


def test_unrestricted_job_is_offered_only_the_award_model(world: World) -> None:
    any_model = _submit(world, ())
    cluster = load_cluster("demo")
    now = datetime.now(UTC).timestamp()
    with world.sessions() as session:
        snapshot = LiveStore(session, cluster).snapshot(now)
    assert snapshot.awards is not None and [
        a.models for awards in snapshot.awards.values() for a in awards
    ] == [frozenset({"H100"})]
    result = schedule(snapshot, build_policy("quota", commons=Commons(awards=True)), now)
    [start] = result.starts
    assert start.job.id == any_model and start.award_id == world.award_id
    assert start.job.accepted_models == frozenset({"H100"})
    assert {cluster.nodes[n].model for n in start.placement.nodes} == {"H100"}
    with world.sessions() as session:  # the job's own request is stored as it was asked
        row = session.get(JobRow, any_model)
        assert row is not None and row.accepted_models == []


def test_job_for_another_model_waits_and_award_model_job_runs_there(world: World) -> None:
    a100_only = _submit(world, ("A100",))
    any_model = _submit(world, (), gpus=4)
    cluster = load_cluster("demo")
    world.engine().step()
    with world.sessions() as session:
        waiting = session.get(JobRow, a100_only)
        assert waiting is not None and waiting.state == "pending"
        assert waiting.reason_code == "award-model"
        assert "awards are for H100" in waiting.reason and "accepts only A100" in waiting.reason
        started = session.get(JobRow, any_model)
        assert started is not None and started.state in ("running", "finished")
        nodes = session.scalars(select(AllocationRow.node_index).where(AllocationRow.job_id == any_model))
        pools = {cluster.nodes[n].pool for n in nodes}
        h100_pools = {p.name for p in cluster.pools if p.model.name == "H100"}
        assert pools and pools <= h100_pools
