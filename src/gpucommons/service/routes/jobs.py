"""Jobs: submit, list, show, events, checkpoint, cancel, logs, why, and usage balances. Members see and
act on their own projects' jobs only (admins on all), and a job's run may report its own checkpoints;
every check runs before anything is stored."""

from __future__ import annotations

import hmac
import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gpucommons.config import Settings
from gpucommons.domain.cluster import Cluster
from gpucommons.engine.live import job_dir
from gpucommons.errors import ConflictError, NotFoundError
from gpucommons.service.auth import (
    Principal,
    PrincipalDep,
    current_principal,
    require_job_class,
    require_job_reader,
    require_project_member,
)
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.routes.common import ClusterDep, get_cluster, get_even_gangs
from gpucommons.service.schemas.common import MAX_ID, MAX_LOG_OFFSET, Id, Name
from gpucommons.service.schemas.jobs import (
    BalanceRead,
    CheckpointRead,
    JobCreate,
    JobEventRead,
    JobRead,
    LogChunk,
    WhyRead,
)
from gpucommons.store import job_events, jobs
from gpucommons.store.base import not_found
from gpucommons.store.jobs import AllocationRow, JobRow
from gpucommons.store.tenancy import ProjectRow
from gpucommons.store.usage import balances as project_balances
from gpucommons.store.why import why as explain_wait

router = APIRouter(tags=["jobs"])
MAX_LOG_CHUNK_BYTES = 1 << 20
JobState = Literal["pending", "running", "finished", "failed", "cancelled", "timeout", "lost"]
Stream = Literal["stdout", "stderr"]
ProjectRef = Annotated[Name | None, Query(description="project name or id")]
_bearer = HTTPBearer(
    auto_error=False, description="an API token, or inside a job its run's own GPUC_JOB_TOKEN"
)


def no_project(ref: str) -> NotFoundError:
    """The answer for a project that does not exist, and for one the caller may not see."""
    return NotFoundError(f"project {ref!r} does not exist")


def project_by_ref(session: Session, ref: str) -> ProjectRow:
    """The project named ``ref`` (a name, or an id), as a submission or a filter names it."""
    query = select(ProjectRow).where(ProjectRow.name == ref)
    row = session.scalar(query)
    if row is None and re.fullmatch(r"[0-9]{1,19}", ref) and 0 < int(ref) <= MAX_ID:
        row = session.get(ProjectRow, int(ref))
    if row is None:
        raise no_project(ref)
    return row


def read_job(session: Session, cluster: Cluster, row: JobRow, project: ProjectRow | None = None) -> JobRead:
    """A job as the API shows it: its project's name, while it runs its GPUs and model, and once it
    has stopped the GPUs its last run held (from its history: the allocations are gone by then)."""
    out = JobRead.model_validate(row)
    if project is None or project.id != row.project_id:
        project = session.get(ProjectRow, row.project_id)
    out.project = project.name if project else ""
    if row.state != "running":  # allocations exist only while a job runs
        out.assigned_gpus = []
        if row.state != "pending" or row.restarts > 0:  # a job still in its first wait never ran
            out.last_gpus = job_events.last_gpus(session, row.id)
        return out
    allocations = list(
        session.scalars(
            select(AllocationRow).where(AllocationRow.job_id == row.id).order_by(AllocationRow.id)
        )
    )
    out.assigned_gpus = out.last_gpus = [f"{a.node_name}:{a.gpu_index}" for a in allocations]
    held = {a.node_name for a in allocations}
    out.model, out.speed, out.reference_model = _runs_on(cluster, held, row.job_class)
    return out


def _runs_on(cluster: Cluster, node_names: set[str], job_class: str) -> tuple[str, float | None, str]:
    """The model a running job holds (its slowest, for a gang over several), the speed of its class
    there against the cluster's reference model, and that reference (design note 0009)."""
    nodes = [cluster.node_by_name[n] for n in node_names if n in cluster.node_by_name]
    if not nodes:
        return "", None, ""
    if cluster.speeds is None:
        return min(n.model for n in nodes), None, ""
    speeds = cluster.speeds
    slowest = min(nodes, key=lambda n: (speeds.speed(job_class, n.model), n.model))
    return slowest.model, speeds.speed(job_class, slowest.model), speeds.reference


def _visible_job(session: Session, principal: Principal, job_id: int) -> JobRow:
    row = jobs.get_job(session, job_id)
    require_job_reader(principal, row.project_id, not_found("job", job_id))
    return row


def wake_scheduler(request: Request) -> None:
    """Start the in-process scheduler's next cycle now (a submission or cancel has something for it)."""
    wake = getattr(request.app.state, "scheduler_wake", None)
    if wake is not None:
        wake.set()


@router.post(
    "/jobs",
    status_code=201,
    responses={
        200: {"model": JobRead, "description": "the job submitted earlier with this idempotency_key"},
        **error_responses(400, 401, 403, 404, 409, 422),
    },
)
async def submit(
    body: JobCreate,
    principal: PrincipalDep,
    session: SessionDep,
    now: NowDep,
    request: Request,
    response: Response,
) -> JobRead:
    """Refused with 422, storing nothing, when no pool the job accepts could ever run it (on an
    even-gang backend such as Slurm: as the same GPUs on every node).

    ``async`` so that FastAPI adds no thread hand-offs of its own (one for a plain route, one more to
    check its answer, one per plain dependency): everything that touches the database runs in one
    worker thread."""
    out, created = await run_in_threadpool(store_submission, body, principal, session, now, request)
    if created:
        request.app.state.submissions_total.inc()
    else:
        response.status_code = 200
    wake_scheduler(request)
    return out


def store_submission(
    body: JobCreate, principal: Principal, session: Session, now: datetime, request: Request
) -> tuple[JobRead, bool]:
    """Check and store one submission (``submit``'s work, which blocks on the database): the job as
    stored, and whether it is new (``False``: its idempotency key named an earlier one)."""
    project = project_by_ref(session, body.project)
    require_project_member(principal, project.id, no_project(body.project))
    require_job_class(principal, project.id, body.priority_class, body.preemptible)
    fields = body.model_dump(exclude={"project"})
    fields["models"] = tuple(fields["models"])
    settings: Settings = request.app.state.settings
    job_request = jobs.JobRequest(**fields, max_grace_s=settings.max_grace_s)
    cluster, even_gangs = get_cluster(request), get_even_gangs(request)
    with request.app.state.write_lock:  # SQLite: one writer thread at a time, see create_app
        row, created = jobs.submit_job(
            session, cluster, project.id, principal.user_id, job_request, now, even_gangs=even_gangs
        )
        session.commit()
    return read_job(session, cluster, row, project), created


@router.get("/jobs", responses=error_responses(401, 403, 404, 422))
def list_jobs(
    principal: PrincipalDep,
    session: SessionDep,
    cluster: ClusterDep,
    state: Annotated[list[JobState] | None, Query(max_length=16)] = None,
    project: ProjectRef = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    array: Annotated[Id | None, Query(description="only the tasks of this job array")] = None,
    tasks: Annotated[bool, Query(description="false: plain jobs only, no job array's tasks")] = True,
) -> list[JobRead]:
    visible = None if principal.is_admin else set(principal.projects)
    if project is not None:
        row = project_by_ref(session, project)
        require_project_member(principal, row.id, no_project(project))
        visible = {row.id}
    found = jobs.list_jobs(session, visible, state or (), limit, array_id=array, tasks=tasks)
    return [read_job(session, cluster, r) for r in found]


@router.get("/jobs/{job_id:int}", responses=error_responses(401, 403, 404, 422))
def show(job_id: Id, principal: PrincipalDep, session: SessionDep, cluster: ClusterDep) -> JobRead:
    return read_job(session, cluster, _visible_job(session, principal, job_id))


@router.get("/jobs/{job_id:int}/events", responses=error_responses(401, 403, 404, 422))
def events(job_id: Id, principal: PrincipalDep, session: SessionDep) -> list[JobEventRead]:
    """The job's history, oldest first: submitted, each start with its GPUs, preemptions (by which
    job, why), requeues, its end (design note 0017). Visible to whoever may see the job."""
    _visible_job(session, principal, job_id)
    return [JobEventRead.model_validate(e) for e in job_events.list_events(session, job_id)]


def _checkpointing_job(
    session: Session,
    now: datetime,
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    job_id: int,
) -> JobRow:
    """The job a checkpoint report is for, if the caller may report it: the job's own run, by the
    secret it was launched with (``GPUC_JOB_TOKEN``, valid for that job only, until its next run
    starts), or a member of its project or an admin. Any other caller, a run of another job among
    them, gets the 404 of a job that does not exist."""
    raw = credentials.credentials if credentials is not None else ""
    if not raw.startswith(jobs.RUN_TOKEN_PREFIX):
        return _visible_job(session, current_principal(session, now, request, credentials), job_id)
    row = session.get(JobRow, job_id)
    stored = row.run_token_sha256 if row is not None else None
    if row is None or stored is None or not hmac.compare_digest(stored, jobs.hash_run_token(raw)):
        raise not_found("job", job_id)
    return row


@router.post("/jobs/{job_id:int}/checkpoint", responses=error_responses(401, 404, 409, 422))
def checkpoint(
    job_id: Id,
    session: SessionDep,
    now: NowDep,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> CheckpointRead:
    """Record that the job wrote a checkpoint now (design note 0016): while it runs, or stops in its
    grace period after a preemption; 409 once it has ended. Only ever moves the job's last checkpoint
    forward. The scheduler prefers victims that lose the least work since their last checkpoint."""
    row = _checkpointing_job(session, now, request, credentials, job_id)
    if row.state not in jobs.ACTIVE_STATES:
        raise ConflictError(f"job {job_id} has ended ({row.state}); a checkpoint is no longer recorded")
    with request.app.state.write_lock:  # SQLite: one writer thread at a time, see create_app
        jobs.record_checkpoint(session, job_id, now)
        session.commit()
    session.refresh(row)
    return CheckpointRead(job_id=job_id, last_checkpoint_at=row.last_checkpoint_at)


@router.post("/jobs/{job_id:int}/cancel", responses=error_responses(401, 403, 404, 409, 422))
def cancel(
    job_id: Id,
    principal: PrincipalDep,
    session: SessionDep,
    now: NowDep,
    request: Request,
    cluster: ClusterDep,
) -> JobRead:
    row = jobs.request_cancel(session, _visible_job(session, principal, job_id), now)
    session.commit()
    wake_scheduler(request)
    return read_job(session, cluster, row)


@router.get("/jobs/{job_id:int}/why", responses=error_responses(400, 401, 403, 404, 422))
def why(
    job_id: Id, principal: PrincipalDep, session: SessionDep, now: NowDep, cluster: ClusterDep
) -> WhyRead:
    row = _visible_job(session, principal, job_id)
    out = WhyRead.model_validate(explain_wait(session, cluster, row, now))
    if row.state == "running":
        held = session.scalars(select(AllocationRow.node_name).where(AllocationRow.job_id == row.id))
        out.model, out.speed, out.reference_model = _runs_on(cluster, set(held), row.job_class)
    return out


@router.get("/jobs/{job_id:int}/logs", responses=error_responses(401, 403, 404, 422))
def logs(
    job_id: Id,
    principal: PrincipalDep,
    session: SessionDep,
    request: Request,
    stream: Stream = "stdout",
    offset: Annotated[int, Query(ge=0, le=MAX_LOG_OFFSET, description="byte offset")] = 0,
) -> LogChunk:
    """Up to 1 MiB of a log from ``offset``; an offset past the end gives no text, not an error."""
    row = _visible_job(session, principal, job_id)
    settings: Settings = request.app.state.settings
    path = job_dir(settings.home / "jobs", job_id) / f"{stream}.log"
    data = b""
    if path.exists():
        with open(path, "rb") as handle:
            if offset < path.stat().st_size:
                handle.seek(offset)
                data = handle.read(MAX_LOG_CHUNK_BYTES)
    return LogChunk(
        job_id=job_id,
        stream=stream,
        text=data.decode("utf-8", "replace"),
        next_offset=offset + len(data),
        state=row.state,
    )


@router.get("/usage", responses=error_responses(401, 403, 404, 422))
def usage(principal: PrincipalDep, session: SessionDep, project: ProjectRef = None) -> list[BalanceRead]:
    visible = None if principal.is_staff else set(principal.projects)
    if project is not None:
        row = project_by_ref(session, project)
        if not principal.is_staff:
            require_project_member(principal, row.id, no_project(project))
        visible = {row.id}
    return [BalanceRead.model_validate(b) for b in project_balances(session, visible)]
