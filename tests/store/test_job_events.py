"""Job events in the store, on SQLite and PostgreSQL: an array's tasks get their ``submitted`` events in
one statement however many there are, a retry or a second cancel records nothing again, and an array's
cancel records each task's request (and the end of each that was waiting) in one statement."""

from __future__ import annotations

from sqlalchemy import func, select, update

from gpucommons.domain.arrays import parse_array_spec
from gpucommons.store.arrays import cancel_array, submit_array
from gpucommons.store.job_events import JobEventRow, list_events
from gpucommons.store.jobs import JobRequest, JobRow, get_job, request_cancel, submit_job
from tests.store.test_arrays import NOW, REQUEST, Tenant, statements, tenant

__all__ = ["tenant"]


def events_sent(sent: list[str]) -> int:
    return sum("INSERT INTO job_events" in statement for statement in sent)


def kinds(tenant: Tenant, job_id: int) -> list[str]:
    return [e.kind for e in list_events(tenant.session, job_id)]


def test_an_arrays_tasks_are_submitted_in_one_statement(tenant: Tenant) -> None:
    spec = parse_array_spec("0-9999", 100_000)
    with statements(tenant.session) as sent:
        array, _ = submit_array(
            tenant.session, tenant.cluster, tenant.project_id, tenant.user_id, REQUEST, spec, NOW
        )
        tenant.session.commit()
    assert events_sent(sent) == 1
    query = select(
        JobEventRow.kind, JobEventRow.at, JobEventRow.run, JobEventRow.detail, func.count()
    ).group_by(JobEventRow.kind, JobEventRow.at, JobEventRow.run, JobEventRow.detail)
    assert tenant.session.execute(query).all() == [("submitted", NOW, 1, f"task of array {array.id}", 10_000)]
    per_task = select(func.count(func.distinct(JobEventRow.job_id)))
    assert tenant.session.scalar(per_task) == 10_000  # one each


def test_a_retry_and_a_second_cancel_record_nothing_again(tenant: Tenant) -> None:
    keyed = JobRequest(gpus=1, command=["true"], idempotency_key="once")
    job, _ = submit_job(tenant.session, tenant.cluster, tenant.project_id, tenant.user_id, keyed, NOW)
    again, created = submit_job(tenant.session, tenant.cluster, tenant.project_id, tenant.user_id, keyed, NOW)
    assert (again.id, created) == (job.id, False)
    request_cancel(tenant.session, get_job(tenant.session, job.id), NOW)
    request_cancel(tenant.session, get_job(tenant.session, job.id), NOW)
    tenant.session.commit()
    assert kinds(tenant, job.id) == ["submitted", "cancel_requested", "ended"]


def test_an_arrays_cancel_records_each_tasks_request_in_one_statement(tenant: Tenant) -> None:
    spec = parse_array_spec("0-3", 100_000)
    array, _ = submit_array(
        tenant.session, tenant.cluster, tenant.project_id, tenant.user_id, REQUEST, spec, NOW
    )
    waiting, running, done, restarted = tenant.tasks(array.id)
    tenant.session.execute(update(JobRow).where(JobRow.id == running.id).values(state="running"))
    tenant.session.execute(update(JobRow).where(JobRow.id == done.id).values(state="finished"))
    tenant.session.execute(update(JobRow).where(JobRow.id == restarted.id).values(restarts=2))
    tenant.session.commit()
    with statements(tenant.session) as sent:
        cancel_array(tenant.session, array, NOW)
        tenant.session.commit()
    assert events_sent(sent) == 1
    assert kinds(tenant, waiting.id) == ["submitted", "cancel_requested", "ended"]
    assert kinds(tenant, running.id) == ["submitted", "cancel_requested"]  # the scheduler stops it
    assert kinds(tenant, done.id) == ["submitted"]
    ended = list_events(tenant.session, restarted.id)[-1]
    assert (ended.kind, ended.run, ended.detail) == (
        "ended",
        3,
        f"cancelled: cancelled while pending (array {array.id} was cancelled)",
    )
