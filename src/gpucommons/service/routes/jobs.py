"""Jobs: submit, list, show, cancel, logs, why, and usage balances. Members see and act on their own
projects' jobs only (admins on all); every check runs before anything is stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucommons.clusterfile import load_cluster
from gpucommons.config import Settings
from gpucommons.domain.cluster import Cluster
from gpucommons.engine.live import job_dir
from gpucommons.errors import InvalidRequestError, NotFoundError
from gpucommons.service.auth import Principal, PrincipalDep, require_project_member
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.schemas.jobs import BalanceRead, JobCreate, JobRead, LogChunk, WhyRead
from gpucommons.store import jobrepo, jobviews
from gpucommons.store.jobs import AllocationRow, JobRow
from gpucommons.store.models import ProjectRow

router = APIRouter(tags=["jobs"])
MAX_LOG_CHUNK_BYTES = 1 << 20


def get_cluster(request: Request) -> Cluster:
    """The inventory the server schedules on, loaded once from ``settings.cluster``."""
    cluster: Cluster | None = getattr(request.app.state, "cluster", None)
    if cluster is None:
        settings: Settings = request.app.state.settings
        cluster = load_cluster(settings.cluster)
        request.app.state.cluster = cluster
    return cluster


ClusterDep = Annotated[Cluster, Depends(get_cluster)]


def _project(session: Session, ref: str) -> ProjectRow:
    query = select(ProjectRow).where(ProjectRow.name == ref)
    row = session.scalar(query)
    if row is None and ref.isdigit():
        row = session.get(ProjectRow, int(ref))
    if row is None:
        raise NotFoundError(f"project {ref!r} does not exist")
    return row


def _read(session: Session, row: JobRow, project: ProjectRow | None = None) -> JobRead:
    out = JobRead.model_validate(row)
    if project is None or project.id != row.project_id:
        project = session.get(ProjectRow, row.project_id)
    out.project = project.name if project else ""
    if row.state == "pending":  # allocations exist only while a job runs
        out.assigned_gpus = []
        return out
    allocations = session.scalars(
        select(AllocationRow).where(AllocationRow.job_id == row.id).order_by(AllocationRow.id)
    )
    out.assigned_gpus = [f"{a.node_name}:{a.gpu_index}" for a in allocations]
    return out


def _visible_job(session: Session, principal: Principal, job_id: int) -> JobRow:
    row = jobrepo.get_job(session, job_id)
    require_project_member(principal, row.project_id)
    return row


def _wake_scheduler(request: Request) -> None:
    wake = getattr(request.app.state, "scheduler_wake", None)
    if wake is not None:
        wake.set()


@router.post("/jobs", status_code=201)
def submit(
    body: JobCreate,
    principal: PrincipalDep,
    session: SessionDep,
    now: NowDep,
    cluster: ClusterDep,
    request: Request,
    response: Response,
) -> JobRead:
    project = _project(session, body.project)
    require_project_member(principal, project.id)
    fields = body.model_dump(exclude={"project"})
    fields["models"] = tuple(fields["models"])
    job_request = jobrepo.JobRequest(**fields)
    with request.app.state.write_lock:  # SQLite: one writer thread at a time, see create_app
        row, created = jobrepo.submit_job(session, cluster, project.id, principal.user_id, job_request, now)
        session.commit()
    if created:
        request.app.state.submissions_total.inc()
    else:
        response.status_code = 200
    _wake_scheduler(request)
    return _read(session, row, project)


@router.get("/jobs")
def list_jobs(
    principal: PrincipalDep,
    session: SessionDep,
    state: Annotated[list[str] | None, Query()] = None,
    project: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[JobRead]:
    visible = None if principal.is_admin else set(principal.projects)
    if project is not None:
        row = _project(session, project)
        require_project_member(principal, row.id)
        visible = {row.id}
    return [_read(session, r) for r in jobrepo.list_jobs(session, visible, state or (), limit)]


@router.get("/jobs/{job_id}")
def show(job_id: int, principal: PrincipalDep, session: SessionDep) -> JobRead:
    return _read(session, _visible_job(session, principal, job_id))


@router.post("/jobs/{job_id}/cancel")
def cancel(
    job_id: int, principal: PrincipalDep, session: SessionDep, now: NowDep, request: Request
) -> JobRead:
    row = jobrepo.request_cancel(session, _visible_job(session, principal, job_id), now)
    session.commit()
    _wake_scheduler(request)
    return _read(session, row)


@router.get("/jobs/{job_id}/why")
def why(
    job_id: int, principal: PrincipalDep, session: SessionDep, now: NowDep, cluster: ClusterDep
) -> WhyRead:
    row = _visible_job(session, principal, job_id)
    return WhyRead.model_validate(jobviews.why(session, cluster, row, now))


@router.get("/jobs/{job_id}/logs")
def logs(
    job_id: int,
    principal: PrincipalDep,
    session: SessionDep,
    request: Request,
    stream: str = "stdout",
    offset: Annotated[int, Query(ge=0)] = 0,
) -> LogChunk:
    row = _visible_job(session, principal, job_id)
    if stream not in ("stdout", "stderr"):
        raise InvalidRequestError("stream must be stdout or stderr")
    settings: Settings = request.app.state.settings
    path = job_dir(settings.home / "jobs", job_id) / f"{stream}.log"
    data = b""
    if path.exists():
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(MAX_LOG_CHUNK_BYTES)
    return LogChunk(
        job_id=job_id,
        stream=stream,
        text=data.decode("utf-8", "replace"),
        next_offset=offset + len(data),
        state=row.state,
    )


@router.get("/usage")
def usage(principal: PrincipalDep, session: SessionDep, project: str | None = None) -> list[BalanceRead]:
    visible = None if principal.is_staff else set(principal.projects)
    if project is not None:
        row = _project(session, project)
        if not principal.is_staff:
            require_project_member(principal, row.id)
        visible = {row.id}
    return [BalanceRead.model_validate(b) for b in jobviews.balances(session, visible)]
