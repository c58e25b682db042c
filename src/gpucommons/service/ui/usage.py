"""My balances and usage over time: each award's budget and spend (``GET /usage``) and charts of
GPU-hours, won and energy per day, week, month, quarter or year by project (``GET /reports/usage``
with ``every``, design note 0010). Both through the API's route functions, so a member sees their
own projects' figures only and a reviewer or admin every project's."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gpucommons.service.deps import SessionDep
from gpucommons.service.routes import jobs as job_routes
from gpucommons.service.routes import reports as report_routes
from gpucommons.service.routes.reports import Every
from gpucommons.service.ui.charts import Chart, stacked_bars
from gpucommons.service.ui.rendering import render
from gpucommons.service.ui.signin import CsrfDep, ViewerDep
from gpucommons.store.reports import EVERY

router = APIRouter()
DEFAULT_EVERY: Every = "month"


def _won(value: float) -> str:
    return f"{value:,.0f} won"


@router.get("/usage")
def usage_page(
    request: Request, who: ViewerDep, csrf: CsrfDep, session: SessionDep, every: Every = DEFAULT_EVERY
) -> Response:
    balances = job_routes.usage(who, session, project=None)
    report = report_routes.usage_report(who, session, by="project", period=None, every=every)
    charts: list[Chart] = [
        stacked_bars("GPU-hours", [(x.bucket, x.group, x.gpu_hours) for x in report.lines]),
        stacked_bars("Won charged", [(x.bucket, x.group, float(x.cost_krw)) for x in report.lines], _won),
        stacked_bars("Energy (kWh)", [(x.bucket, x.group, x.energy_kwh) for x in report.lines]),
    ]
    context = {"balances": balances, "charts": charts, "every": every, "choices": EVERY}
    return render(request, "usage.html", context, viewer=who, csrf=csrf)
