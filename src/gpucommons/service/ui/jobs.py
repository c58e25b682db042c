"""My jobs: the latest jobs of the viewer's projects (an admin: everyone's) with their state, model and
GPUs and why each pending one waits; one job with its wait explained, its history (``GET
/jobs/{id}/events``) and the tails of its logs; and cancel. Each job is shown and cancelled through
the API's own route functions, so the same member may see and cancel it as through ``/jobs``;
another project's job is the API's 404.

The list's rows are also served alone (``/jobs/rows``), which the page's script fetches every
``JOBS_REFRESH_S`` seconds, so states change on screen as the scheduler moves them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from gpucommons.config import Settings
from gpucommons.domain.cluster import Cluster
from gpucommons.engine.live import job_dir
from gpucommons.service.auth import Principal
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.routes import jobs as job_routes
from gpucommons.service.routes.common import ClusterDep
from gpucommons.service.routes.jobs import Stream
from gpucommons.service.schemas.common import MAX_ID
from gpucommons.service.schemas.jobs import JobRead, WhyRead
from gpucommons.service.ui.rendering import render, see_other
from gpucommons.service.ui.signin import CheckedFormDep, CsrfDep, ViewerDep
from gpucommons.store.jobs import ACTIVE_STATES, latest_jobs

router = APIRouter()
JOBS_SHOWN = 50
JOBS_REFRESH_S = 5.0
LOG_TAIL_BYTES = 8 * 1024
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]


@dataclass(frozen=True)
class JobLine:
    """A job and, while it waits, why (``store/why.py`` through ``GET /jobs/{id}/why``)."""

    job: JobRead
    why: WhyRead | None

    @property
    def cancellable(self) -> bool:
        return self.job.state in ACTIVE_STATES and self.job.cancel_requested_at is None


def job_lines(session: Session, cluster: Cluster, who: Principal, now: datetime) -> list[JobLine]:
    """The latest ``JOBS_SHOWN`` jobs the viewer may see, newest first. The projects are those of
    ``GET /jobs`` (an admin: all; anyone else: their own), and each job is read through ``show``."""
    visible = None if who.is_admin else set(who.projects)
    lines = []
    for row in latest_jobs(session, visible, JOBS_SHOWN):
        job = job_routes.show(row.id, who, session, cluster)
        why = job_routes.why(row.id, who, session, now, cluster) if job.state == "pending" else None
        lines.append(JobLine(job, why))
    return lines


@router.get("/jobs")
def jobs_page(
    request: Request, who: ViewerDep, csrf: CsrfDep, session: SessionDep, now: NowDep, cluster: ClusterDep
) -> Response:
    lines = job_lines(session, cluster, who, now)
    context = {"lines": lines, "refresh_s": JOBS_REFRESH_S}
    return render(request, "jobs.html", context, viewer=who, csrf=csrf)


@router.get("/jobs/rows")
def job_rows(
    request: Request, who: ViewerDep, csrf: CsrfDep, session: SessionDep, now: NowDep, cluster: ClusterDep
) -> Response:
    """The list's rows alone, for the page's refresh."""
    lines = job_lines(session, cluster, who, now)
    return render(request, "_job_rows.html", {"lines": lines}, viewer=who, csrf=csrf)


def log_tail(request: Request, who: Principal, session: Session, job_id: int, stream: Stream) -> str:
    """The last ``LOG_TAIL_BYTES`` of a job's log, through ``GET /jobs/{id}/logs`` (which checks the
    viewer may read it), from the start of a line."""
    settings: Settings = request.app.state.settings
    path = job_dir(settings.home / "jobs", job_id) / f"{stream}.log"
    size = path.stat().st_size if path.exists() else 0
    offset = max(0, size - LOG_TAIL_BYTES)
    text = job_routes.logs(job_id, who, session, request, stream, offset).text
    return text.partition("\n")[2] if offset > 0 else text


@router.get("/jobs/{job_id}")
def job_page(
    request: Request,
    job_id: JobId,
    who: ViewerDep,
    csrf: CsrfDep,
    session: SessionDep,
    now: NowDep,
    cluster: ClusterDep,
) -> Response:
    job = job_routes.show(job_id, who, session, cluster)
    line = JobLine(job, job_routes.why(job_id, who, session, now, cluster))
    streams: tuple[Stream, ...] = ("stdout", "stderr")
    logs = {stream: log_tail(request, who, session, job_id, stream) for stream in streams}
    events = job_routes.events(job_id, who, session)
    context = {"line": line, "events": events, "logs": logs, "tail_bytes": LOG_TAIL_BYTES}
    return render(request, "job.html", context, viewer=who, csrf=csrf)


@router.post("/jobs/{job_id}/cancel")
def cancel_job(
    request: Request,
    job_id: JobId,
    who: ViewerDep,
    fields: CheckedFormDep,
    session: SessionDep,
    now: NowDep,
    cluster: ClusterDep,
) -> Response:
    """Cancel as ``POST /jobs/{id}/cancel`` does (a pending job at once, a running one is stopped by
    the scheduler), then back to the page the form was on."""
    job_routes.cancel(job_id, who, session, now, request, cluster)
    return see_other(request, f"/jobs/{job_id}" if fields.get("back") == "job" else "/jobs")
