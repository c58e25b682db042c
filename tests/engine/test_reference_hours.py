"""Exchange rates under one quota in the live service (design note 0009): an award in reference
GPU-hours pays for every model, each device-hour at the job's class's speed there, and every segment
keeps the rate it was charged at; an award in device-hours pays only for its program's model. Real
local processes, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.cluster import Cluster
from gpucommons.store import awards as award_repo
from gpucommons.store.awards import AwardRow
from gpucommons.store.calls import create_program
from gpucommons.store.jobs import JobRow
from gpucommons.store.usage import UsageRow
from tests.engine.conftest import World
from tests.engine.test_live_engine import step_until
from tests.job_release import Release, releases

__all__ = ["releases"]

pytestmark = pytest.mark.timeout(90)

CLUSTER = """
name = "rates"

[[sites]]
name = "lab"
region = "capital"

[[pools]]
name = "a100"
site = "lab"
model = "A100"
nodes = 1
gpus_per_node = 8

[[pools]]
name = "k80"
site = "lab"
model = "K80"
nodes = 1
gpus_per_node = 8

[speeds]
reference = "A100"

[speeds.inference]
K80 = 0.25
"""


def rates_cluster(root: Path) -> Cluster:
    path = root / "rates.toml"
    path.write_text(CLUSTER, encoding="utf-8")
    return load_cluster(str(path))


def award_in(world: World, unit: str, model: str = "A100", budget: float = 10.0) -> int:
    """The world's project's only current award: ``budget`` GPU-hours of a program in ``unit``."""
    now = datetime.now(UTC)
    with world.sessions() as s:
        first = s.get(AwardRow, world.award_id)
        assert first is not None
        first.status = "expired"
        program = create_program(
            s, name=f"{unit} call", model=model, capacity_gpus=8, unit_gpus=8, duration_days=30, unit=unit
        )
        terms = award_repo.AwardTerms(world.project_id, program.id, gpu_hours_budget=budget)
        award = award_repo.create_award(s, terms, now - timedelta(minutes=1))
        award_repo.activate_award(s, award.id, now)
        s.commit()
        assert award.unit == unit
        return award.id


def test_a_reference_hours_award_charges_each_device_hour_at_the_jobs_speed(
    world: World, tmp_path: Path, releases: Callable[[str], Release]
) -> None:
    cluster = rates_cluster(tmp_path)
    award_id = award_in(world, "reference-hours")
    release = releases("done")
    run = release.command  # each runs until all three are running, so each segment has a length
    wanted = {  # job -> the rate its segment must be charged at
        world.submit(run, gpus=2, cluster=cluster, models=["K80"], job_class="inference"): 0.25,  # file's
        world.submit(run, gpus=2, cluster=cluster, models=["K80"]): 0.15,  # default class: catalog speed
        world.submit(run, gpus=2, cluster=cluster, models=["A100"], job_class="inference"): 1.0,
    }
    engine = world.engine(cluster=cluster)

    def all_in(state: str) -> bool:
        with world.sessions() as s:
            states = list(s.scalars(select(JobRow.state).where(JobRow.id.in_(wanted))))
            return states == [state] * len(wanted)

    step_until(engine, lambda: all_in("running"))
    release.release()
    step_until(engine, lambda: all_in("finished"))
    with world.sessions() as s:
        segments = {u.job_id: u for u in s.scalars(select(UsageRow))}
        award = s.get(AwardRow, award_id)
        assert award is not None
        assert {job_id: segments[job_id].rate for job_id in wanted} == pytest.approx(wanted)
        assert all(segments[job_id].award_id == award_id for job_id in wanted)
        assert {segments[j].model for j in wanted} == {"K80", "A100"}
        charged = sum(u.gpu_hours * u.rate for u in segments.values())
        assert award.gpu_hours_used == pytest.approx(charged)
        assert award.gpu_hours_used < sum(u.gpu_hours for u in segments.values())  # K80 hours cost less


def test_a_device_hours_award_pays_only_for_its_programs_model(world: World, tmp_path: Path) -> None:
    cluster = rates_cluster(tmp_path)
    award_id = award_in(world, "device-hours", model="A100")
    on_k80 = world.submit(["true"], cluster=cluster, models=["K80"], job_class="inference")
    on_a100 = world.submit(["true"], cluster=cluster, job_class="inference")
    engine = world.engine(cluster=cluster)

    def state(job_id: int) -> tuple[str, str]:
        with world.sessions() as s:
            row = s.get(JobRow, job_id)
            assert row is not None
            return row.state, row.reason_code

    step_until(engine, lambda: state(on_a100)[0] == "finished")
    assert state(on_k80) == ("pending", "award-model")
    with world.sessions() as s:
        segment = s.scalars(select(UsageRow).where(UsageRow.job_id == on_a100)).one()
        award = s.get(AwardRow, award_id)
        assert award is not None
        assert (segment.model, segment.rate) == ("A100", 1.0)
        assert award.gpu_hours_used == pytest.approx(segment.gpu_hours)
