"""The admin page: each site's power draw against its cap, the queue (every pending and running job,
pending ones with why they wait), the awards, the reservations still to end (``GET /reservations``,
design note 0016), and each declared target over its latest closed period (``GET /targets/attainment``,
design note 0014). Admins only (``auth.require_admin``: anyone else gets the API's 403)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gpucommons.service.auth import require_admin
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.routes import awards as award_routes
from gpucommons.service.routes import jobs as job_routes
from gpucommons.service.routes import programs as program_routes
from gpucommons.service.routes import projects as project_routes
from gpucommons.service.routes import reservations as reservation_routes
from gpucommons.service.routes import targets as target_routes
from gpucommons.service.routes.common import ClusterDep
from gpucommons.service.ui.charts import draw_gauge
from gpucommons.service.ui.jobs import JobLine
from gpucommons.service.ui.power import site_power
from gpucommons.service.ui.rendering import render
from gpucommons.service.ui.signin import CsrfDep, ViewerDep

router = APIRouter()
QUEUE_SHOWN = 200


@router.get("/admin")
def admin_page(
    request: Request, who: ViewerDep, csrf: CsrfDep, session: SessionDep, now: NowDep, cluster: ClusterDep
) -> Response:
    require_admin(who)
    sites = [(s, draw_gauge(s.draw_w, s.cap_w)) for s in site_power(session, cluster, now)]
    queued = job_routes.list_jobs(who, session, cluster, state=["running", "pending"], limit=QUEUE_SHOWN)
    queue = [
        JobLine(job, job_routes.why(job.id, who, session, now, cluster) if job.state == "pending" else None)
        for job in queued
    ]
    projects = {p.id: p.name for p in project_routes.list_projects(who, session)}
    programs = {p.id: p.name for p in program_routes.list_programs(who, session)}
    awards = award_routes.list_awards(who, session, program_id=None)
    reservations = reservation_routes.list_reservations(who, session, now, project=None, include_past=False)
    targets = target_routes.attainment(who, session, now, period=None).lines
    context = {
        "sites": sites,
        "queue": queue,
        "awards": awards,
        "reservations": reservations,
        "targets": targets,
        "projects": projects,
        "programs": programs,
    }
    return render(request, "admin.html", context, viewer=who, csrf=csrf)
