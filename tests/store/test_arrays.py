"""Job arrays in the store, on SQLite and PostgreSQL: one submission stores every task in a handful of
statements, a retry finds the array, a refusal stores nothing, cancel reaches every task not ended,
and the live store hands each task's array and the array's limit to the policy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.arrays import ArraySpec, ArrayTask, parse_array_spec
from gpucommons.domain.cluster import Cluster
from gpucommons.errors import ConflictError, InvalidRequestError, NotFoundError
from gpucommons.store.arrays import (
    ArrayRow,
    array_task,
    array_task_of,
    cancel_array,
    list_arrays,
    next_pending,
    submit_array,
    task_states,
)
from gpucommons.store.base import count_rows
from gpucommons.store.jobs import JobRequest, JobRow, submit_job
from gpucommons.store.state_store import LiveStore
from gpucommons.store.tenancy import create_institution, create_project, create_user

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REQUEST = JobRequest(gpus=1, command=["python3", "shard.py"], time_limit="10m", name="shards")


@dataclass
class Tenant:
    session: Session
    cluster: Cluster
    project_id: int
    user_id: int

    def submit(self, text: str, request: JobRequest = REQUEST) -> tuple[ArrayRow, bool]:
        spec = parse_array_spec(text, 100_000)
        return submit_array(self.session, self.cluster, self.project_id, self.user_id, request, spec, NOW)

    def tasks(self, array_id: int) -> list[JobRow]:
        query = select(JobRow).where(JobRow.array_id == array_id).order_by(JobRow.id)
        return list(self.session.scalars(query))


@pytest.fixture
def tenant(session: Session) -> Tenant:
    inst = create_institution(session, "KISTI", "research_institute", "non_capital")
    project = create_project(session, "weather", inst.id)
    user = create_user(session, "kim")
    session.commit()
    return Tenant(session, load_cluster("demo"), project.id, user.id)


@contextmanager
def statements(session: Session) -> Iterator[list[str]]:
    """The SQL statements the session's connection sends meanwhile (an executemany counts once)."""
    seen: list[str] = []
    engine = session.get_bind()

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_one_submission_stores_every_task_in_a_few_statements(tenant: Tenant) -> None:
    with statements(tenant.session) as sent:
        array, created = tenant.submit("0-999%50")
        tenant.session.commit()
    assert created
    assert len(sent) <= 12, sent  # not a statement per task
    tasks = tenant.tasks(array.id)
    assert [t.array_task_id for t in tasks] == list(range(1000))
    assert tasks[0].id == array.id and {t.array_id for t in tasks} == {array.id}
    assert {(t.state, t.gpus, t.name, tuple(t.command), t.time_limit_s) for t in tasks} == {
        ("pending", 1, "shards", ("python3", "shard.py"), 600.0)
    }
    assert (array.spec, array.task_count, array.task_min, array.task_max, array.max_running) == (
        "0-999%50",
        1000,
        0,
        999,
        50,
    )
    assert task_states(tenant.session, [array.id]) == {array.id: {"pending": 1000}}
    assert array_task(tenant.session, array, 7).array_task_id == 7
    assert next_pending(tenant.session, array.id) == tasks[0]


def test_a_list_with_steps_numbers_its_tasks_by_index(tenant: Tenant) -> None:
    array, _ = tenant.submit("1,3,10-16:3")
    tenant.session.commit()
    assert [t.array_task_id for t in tenant.tasks(array.id)] == [1, 3, 10, 13, 16]
    assert (array.task_min, array.task_max, array.max_running) == (1, 16, None)
    with pytest.raises(NotFoundError, match=r"task \d+_2 not found"):
        array_task(tenant.session, array, 2)


def test_a_retry_with_the_same_key_finds_the_array(tenant: Tenant) -> None:
    keyed = JobRequest(gpus=1, command=["true"], idempotency_key="k1")
    first, created = tenant.submit("0-9", keyed)
    tenant.session.commit()
    again, created_again = tenant.submit("0-9", keyed)
    assert (created, created_again, again.id) == (True, False, first.id)
    assert count_rows(tenant.session, JobRow) == 10


def test_a_key_that_names_a_plain_job_is_a_conflict(tenant: Tenant) -> None:
    keyed = JobRequest(gpus=1, command=["true"], idempotency_key="k2")
    submit_job(tenant.session, tenant.cluster, tenant.project_id, tenant.user_id, keyed, NOW)
    tenant.session.commit()
    with pytest.raises(ConflictError, match="which is no array"):
        tenant.submit("0-9", keyed)
    tenant.session.rollback()
    assert (count_rows(tenant.session, JobRow), count_rows(tenant.session, ArrayRow)) == (1, 0)


def test_a_task_no_pool_could_run_is_refused_before_anything_is_stored(tenant: Tenant) -> None:
    with pytest.raises(InvalidRequestError, match="can ever hold 17"):
        tenant.submit("0-99", JobRequest(gpus=17, command=["true"]))
    assert (count_rows(tenant.session, JobRow), count_rows(tenant.session, ArrayRow)) == (0, 0)


def _set_state(session: Session, job_id: int, state: str) -> None:
    session.execute(update(JobRow).where(JobRow.id == job_id).values(state=state))


def test_cancel_reaches_every_task_not_ended_and_again_changes_nothing(tenant: Tenant) -> None:
    array, _ = tenant.submit("0-5")
    ids = [t.id for t in tenant.tasks(array.id)]
    _set_state(tenant.session, ids[0], "running")
    _set_state(tenant.session, ids[1], "finished")
    tenant.session.commit()
    cancel_array(tenant.session, array, NOW)
    tenant.session.commit()
    tasks = {t.id: t for t in tenant.tasks(array.id)}
    assert (tasks[ids[0]].state, tasks[ids[0]].cancel_requested_at) == ("running", NOW)
    assert tasks[ids[1]].state == "finished" and tasks[ids[1]].cancel_requested_at is None
    assert {tasks[i].state for i in ids[2:]} == {"cancelled"}
    assert task_states(tenant.session, [array.id])[array.id] == {"running": 1, "finished": 1, "cancelled": 4}
    versions = {t.id: t.version for t in tasks.values()}
    cancel_array(tenant.session, array, NOW)
    tenant.session.commit()
    tenant.session.expire_all()
    assert {t.id: t.version for t in tenant.tasks(array.id)} == versions


def test_arrays_are_listed_while_a_task_is_active(tenant: Tenant) -> None:
    done, _ = tenant.submit("0-1")
    busy, _ = tenant.submit("0-1")
    for t in tenant.tasks(done.id):
        _set_state(tenant.session, t.id, "finished")
    tenant.session.commit()
    assert [a.id for a in list_arrays(tenant.session, None)] == [busy.id]
    assert [a.id for a in list_arrays(tenant.session, None, active_only=False)] == [done.id, busy.id]
    assert list_arrays(tenant.session, {tenant.project_id + 1}, active_only=False) == []


def test_the_live_snapshot_carries_each_tasks_array_and_the_limits(tenant: Tenant) -> None:
    limited, _ = tenant.submit("0-3%2")
    unlimited, _ = tenant.submit("0-1")
    plain, _ = submit_job(tenant.session, tenant.cluster, tenant.project_id, tenant.user_id, REQUEST, NOW)
    tenant.session.commit()
    snapshot = LiveStore(tenant.session, tenant.cluster).snapshot(NOW.timestamp())
    arrays = {p.job.id: p.job.array_id for p in snapshot.pending}
    assert arrays[limited.id] == limited.id and arrays[unlimited.id] == unlimited.id
    assert arrays[plain.id] is None
    assert dict(snapshot.array_limits) == {limited.id: 2}
    third = tenant.tasks(limited.id)[2]
    assert array_task_of(tenant.session, third) == ArrayTask(limited.id, 2, 4, 0, 3)
    assert array_task_of(tenant.session, plain) is None


def test_spec_of_one_task_is_an_array_of_one(tenant: Tenant) -> None:
    array, _ = submit_array(
        tenant.session,
        tenant.cluster,
        tenant.project_id,
        tenant.user_id,
        REQUEST,
        ArraySpec("5", (5,), None),
        NOW,
    )
    tenant.session.commit()
    assert [(t.id, t.array_task_id) for t in tenant.tasks(array.id)] == [(array.id, 5)]
