"""Job arrays (design note 0011): submit one in one call, list, show, a task, why, cancel. An array is
seen and acted on by its project's members and admins, exactly as its tasks are; every check runs
before anything is stored."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gpucommons.config import Settings
from gpucommons.domain.arrays import MAX_TASK_INDEX, parse_array_spec
from gpucommons.service.auth import (
    Principal,
    PrincipalDep,
    require_job_class,
    require_job_reader,
    require_project_member,
)
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.routes.common import ClusterDep, get_cluster, get_even_gangs
from gpucommons.service.routes.jobs import ProjectRef, no_project, project_by_ref, read_job, wake_scheduler
from gpucommons.service.schemas.arrays import ArrayCreate, ArrayRead, ArrayWhyRead
from gpucommons.service.schemas.common import Id
from gpucommons.service.schemas.jobs import JobRead, WhyRead
from gpucommons.store import arrays
from gpucommons.store.arrays import ArrayRow
from gpucommons.store.base import not_found
from gpucommons.store.jobs import JobRequest, JobRow
from gpucommons.store.tenancy import ProjectRow
from gpucommons.store.why import why as explain_wait

router = APIRouter(tags=["arrays"])
ArrayId = Annotated[Id, Path(description="the array's id: the job id of its first task")]
TaskIndex = Annotated[int, Path(ge=0, le=MAX_TASK_INDEX, description="the task's index in its array")]


def _visible_array(session: Session, principal: Principal, array_id: int) -> ArrayRow:
    array = arrays.get_array(session, array_id)
    require_job_reader(principal, array.project_id, not_found("array", array_id))
    return array


def _reads(session: Session, found: Sequence[ArrayRow]) -> list[ArrayRead]:
    """Arrays as the API shows them: a few queries for all of them, not a few per task."""
    ids = [a.id for a in found]
    states = arrays.task_states(session, ids)
    firsts = {j.id: j for j in session.scalars(select(JobRow).where(JobRow.id.in_(ids)))}
    names = {
        p.id: p.name
        for p in session.scalars(select(ProjectRow).where(ProjectRow.id.in_({a.project_id for a in found})))
    }
    out = []
    for a in found:
        first = firsts[a.id]
        waiting = arrays.next_pending(session, a.id) if states[a.id].get("pending") else None
        out.append(
            ArrayRead(
                id=a.id,
                project_id=a.project_id,
                project=names.get(a.project_id, ""),
                user_id=first.user_id,
                name=first.name,
                gpus=first.gpus,
                spec=a.spec,
                task_count=a.task_count,
                task_min=a.task_min,
                task_max=a.task_max,
                max_running=a.max_running,
                submitted_at=a.submitted_at,
                states=states[a.id],
                reason_code=waiting.reason_code if waiting else "",
                reason=waiting.reason if waiting else "",
            )
        )
    return out


@router.post(
    "/arrays",
    status_code=201,
    responses={
        200: {"model": ArrayRead, "description": "the array submitted earlier with this idempotency_key"},
        **error_responses(400, 401, 403, 404, 409, 422),
    },
)
async def submit(
    body: ArrayCreate,
    principal: PrincipalDep,
    session: SessionDep,
    now: NowDep,
    request: Request,
    response: Response,
) -> ArrayRead:
    """Every task is stored in this one call, in one transaction. Refused with 422, storing nothing,
    for a bad spec (malformed, backwards, a step or limit of 0, more tasks than the server allows) or a
    job no pool it accepts could ever run.

    ``async``, its database work in one worker thread, for the reason ``routes.jobs.submit`` gives."""
    out, created = await run_in_threadpool(store_array, body, principal, session, now, request)
    if created:
        request.app.state.submissions_total.inc(out.task_count)
    else:
        response.status_code = 200
    wake_scheduler(request)
    return out


def store_array(
    body: ArrayCreate, principal: Principal, session: Session, now: datetime, request: Request
) -> tuple[ArrayRead, bool]:
    """Check and store one array with all its tasks (``submit``'s work, which blocks on the
    database): the array as stored, and whether it is new (``False``: an earlier one's key)."""
    project = project_by_ref(session, body.project)
    require_project_member(principal, project.id, no_project(body.project))
    require_job_class(principal, project.id, body.priority_class, body.preemptible)
    settings: Settings = request.app.state.settings
    spec = parse_array_spec(body.array, settings.max_array_tasks)
    fields = body.model_dump(exclude={"project", "array"})
    fields["models"] = tuple(fields["models"])
    job_request = JobRequest(**fields, max_grace_s=settings.max_grace_s)
    cluster, even_gangs = get_cluster(request), get_even_gangs(request)
    with request.app.state.write_lock:  # SQLite: one writer thread at a time, see create_app
        array, created = arrays.submit_array(
            session, cluster, project.id, principal.user_id, job_request, spec, now, even_gangs=even_gangs
        )
        session.commit()
    return _reads(session, [array])[0], created


@router.get("/arrays", responses=error_responses(401, 403, 404, 422))
def list_arrays(
    principal: PrincipalDep,
    session: SessionDep,
    project: ProjectRef = None,
    every: Annotated[bool, Query(alias="all", description="also arrays whose tasks all ended")] = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[ArrayRead]:
    """Arrays with a pending or running task (``all=true``: every one), in submission order."""
    visible = None if principal.is_admin else set(principal.projects)
    if project is not None:
        row = project_by_ref(session, project)
        require_project_member(principal, row.id, no_project(project))
        visible = {row.id}
    return _reads(session, arrays.list_arrays(session, visible, active_only=not every, limit=limit))


@router.get("/arrays/{array_id:int}", responses=error_responses(401, 403, 404, 422))
def show(array_id: ArrayId, principal: PrincipalDep, session: SessionDep) -> ArrayRead:
    return _reads(session, [_visible_array(session, principal, array_id)])[0]


@router.get("/arrays/{array_id:int}/tasks/{index:int}", responses=error_responses(401, 403, 404, 422))
def task(
    array_id: ArrayId, index: TaskIndex, principal: PrincipalDep, session: SessionDep, cluster: ClusterDep
) -> JobRead:
    """One task as a job (``gpuc show 40_7``): its job id acts on it through ``/jobs/{id}``."""
    array = _visible_array(session, principal, array_id)
    return read_job(session, cluster, arrays.array_task(session, array, index))


@router.get("/arrays/{array_id:int}/why", responses=error_responses(401, 403, 404, 422))
def why(
    array_id: ArrayId, principal: PrincipalDep, session: SessionDep, now: NowDep, cluster: ClusterDep
) -> ArrayWhyRead:
    """The array's counts and why its next pending task waits (its place in line, what would unblock)."""
    array = _visible_array(session, principal, array_id)
    waiting = arrays.next_pending(session, array.id)
    return ArrayWhyRead(
        array_id=array.id,
        states=arrays.task_states(session, [array.id])[array.id],
        max_running=array.max_running,
        next_task=waiting.array_task_id if waiting else None,
        why=WhyRead.model_validate(explain_wait(session, cluster, waiting, now)) if waiting else None,
    )


@router.post("/arrays/{array_id:int}/cancel", responses=error_responses(401, 403, 404, 422))
def cancel(
    array_id: ArrayId, principal: PrincipalDep, session: SessionDep, now: NowDep, request: Request
) -> ArrayRead:
    """Pending tasks are cancelled at once and running ones stopped, in one transaction; tasks that
    ended keep their state, and cancelling again changes nothing."""
    array = _visible_array(session, principal, array_id)
    with request.app.state.write_lock:
        arrays.cancel_array(session, array, now)
        session.commit()
    wake_scheduler(request)
    return _reads(session, [array])[0]
