"""Job arrays through the live engine with real local processes, on SQLite and PostgreSQL: the
``%N`` limit holds in the database after every step and between the tasks' own clocks (the tasks
witness it through named pipes, ``tests/array_witness.py``), a held task says why, each task runs
with its own index, and cancelling the array stops what runs and starts nothing more."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.arrays import parse_array_spec
from gpucommons.store.arrays import ArrayRow, cancel_array, submit_array
from gpucommons.store.jobs import JobRequest, JobRow
from gpucommons.store.usage import UsageRow
from tests.array_witness import array_pipes, run_to_completion
from tests.components import wait_until
from tests.conftest import most_overlapping
from tests.engine.conftest import World
from tests.job_release import Release, releases

__all__ = ["releases"]

pytestmark = pytest.mark.timeout(90)
ENDED = ("finished", "failed", "cancelled", "timeout", "lost")


def submit(world: World, spec: str, command: list[str]) -> int:
    request = JobRequest(gpus=1, command=command, time_limit="5m")
    with world.sessions() as s:
        array, _ = submit_array(
            s,
            load_cluster("demo"),
            world.project_id,
            world.user_id,
            request,
            parse_array_spec(spec, 1000),
            datetime.now(UTC),
        )
        s.commit()
        return array.id


def tasks(world: World, array_id: int) -> list[JobRow]:
    with world.sessions() as s:
        return list(s.scalars(select(JobRow).where(JobRow.array_id == array_id).order_by(JobRow.id)))


def test_the_limit_holds_at_every_step_and_every_task_runs_with_its_index(world: World) -> None:
    engine = world.engine()
    held: set[str] = set()
    with array_pipes() as pipes:
        array_id = submit(world, "0-5%2", pipes.task_command("GPUC_JOB_ID"))

        def stepped() -> None:
            engine.step()
            now = tasks(world, array_id)
            assert sum(t.state == "running" for t in now) <= 2
            held.update(t.reason for t in now if t.reason_code == "array-limit")

        witness = run_to_completion(pipes, 6, 2, 60, between=stepped, poll_s=0.05)

    def all_ended() -> bool:
        stepped()
        return all(t.state in ENDED for t in tasks(world, array_id))

    wait_until(all_ended, 30, "the array's tasks did not all end")
    assert held == {f"array {array_id} has 2 of at most 2 tasks running"}
    done = tasks(world, array_id)
    assert {t.state for t in done} == {"finished"} and not witness.repeated
    for t in done:
        logged = (world.root / "jobs" / str(t.id) / "stdout.log").read_text().split()
        assert logged == [str(array_id), str(t.array_task_id), "6", str(t.array_task_id)]
        assert witness.starts[str(t.id)][:2] == (t.array_task_id, t.array_task_id)
    assert most_overlapping(witness.spans()) == 2  # by the processes' own clocks: reached, never passed
    recorded = [
        (t.started_at.timestamp(), t.ended_at.timestamp()) for t in done if t.started_at and t.ended_at
    ]
    assert len(recorded) == 6 and most_overlapping(recorded) <= 2


def test_cancelling_the_array_stops_its_running_tasks_and_starts_no_more(
    world: World, releases: Callable[[str], Release]
) -> None:
    array_id = submit(world, "0-4%2", releases("never").command)  # each task runs until cancelled
    engine = world.engine()

    def two_running() -> bool:
        engine.step()
        return (
            sum(
                t.state == "running" and not t.backend_ref.startswith("pending:")
                for t in tasks(world, array_id)
            )
            == 2
        )

    wait_until(two_running, 30, "two tasks never ran")
    with world.sessions() as s:
        array = s.get(ArrayRow, array_id)
        assert array is not None
        cancel_array(s, array, datetime.now(UTC))
        s.commit()

    def all_ended() -> bool:
        engine.step()
        return all(t.state in ENDED for t in tasks(world, array_id))

    wait_until(all_ended, 30, "the array's tasks did not all end")
    ended = tasks(world, array_id)
    assert {t.state for t in ended} == {"cancelled"}
    with world.sessions() as s:
        ran = s.scalars(select(UsageRow.job_id).where(UsageRow.job_id.in_([t.id for t in ended])))
        assert sorted(ran) == [ended[0].id, ended[1].id]  # the two that ran were metered; no other started
