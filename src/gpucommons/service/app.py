"""``create_app(settings)``: the FastAPI application of the commons.

The database is migrated to head at start (SQLite file under ``GPUC_HOME`` by default), the engine and
session factory hang on ``app.state``, every router in ``ROUTERS`` is mounted, the error tree maps to
HTTP statuses, and Prometheus metrics are served at ``/metrics``. OpenAPI docs are at ``/docs``.

``app_from_env`` is the factory for running several server processes on PostgreSQL
(``uvicorn --factory gpucommons.service.app:app_from_env --workers N``); SQLite allows one writer at a
time, so on SQLite one process serves best, its request threads taking turns at ``write_lock``.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI

from gpucommons import __version__
from gpucommons.clusterfile import load_cluster
from gpucommons.config import Settings
from gpucommons.domain.cluster import Cluster
from gpucommons.service.errors import install_error_handlers
from gpucommons.service.livemetrics import LiveCollector, submissions_counter
from gpucommons.service.metrics import install_metrics
from gpucommons.service.routes import (
    arrays,
    awards,
    institutions,
    jobs,
    lifecycle,
    nodes,
    notices,
    programs,
    projects,
    proposals,
    reports,
    reservations,
    targets,
    tokens,
    users,
)
from gpucommons.service.ui import UI_PATH, create_ui
from gpucommons.store.base import make_engine, session_factory, upgrade, utcnow

# Every resource router, mounted in this order. A new resource adds one line here.
ROUTERS: tuple[APIRouter, ...] = (
    institutions.router,
    projects.router,
    users.router,
    tokens.router,
    programs.router,
    proposals.router,
    awards.router,
    jobs.router,
    arrays.router,
    nodes.router,
    reports.router,
    lifecycle.router,
    notices.router,
    targets.router,
    reservations.router,
)


def create_app(
    settings: Settings, *, clock: Callable[[], datetime] = utcnow, migrate: bool = True
) -> FastAPI:
    """Build the service. ``clock`` returns the current UTC time (tests pass a movable one);
    ``migrate=False`` skips Alembic when the caller already brought the schema to head."""
    if settings.database_url.startswith("sqlite:///"):
        settings.home.mkdir(parents=True, exist_ok=True)
    if migrate:
        upgrade(settings.database_url)
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="gpucommons",
        version=__version__,
        summary="A shared national pool of AI accelerators: tenancy, programs, proposals, awards, jobs.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.clock = clock
    # SQLite has one writer at a time and makes a blocked writer sleep and retry; taking turns on a
    # lock in the process instead lets each request write the moment the previous one committed.
    write_lock: AbstractContextManager[Any] = (
        threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
    )
    app.state.write_lock = write_lock
    install_error_handlers(app)
    registry = install_metrics(app)
    app.state.submissions_total = submissions_counter(registry)

    def cluster() -> Cluster:
        loaded: Cluster | None = getattr(app.state, "cluster", None)
        if loaded is None:
            loaded = app.state.cluster = load_cluster(settings.cluster)
        return loaded

    registry.register(LiveCollector(app.state.sessions, cluster))

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers (used by ``gpuc up`` and load balancers)."""
        return {"status": "ok", "version": __version__}

    for router in ROUTERS:
        app.include_router(router)
    app.mount(UI_PATH, create_ui(app))  # the web dashboard, with its static files (design note 0015)
    return app


def app_from_env() -> FastAPI:
    """The service configured from ``GPUC_*`` variables, for ``uvicorn --factory``. The schema must
    already be at head (``gpuc up``, ``gpuc admin bootstrap`` or a previous server migrated it), so
    several workers starting at once do not race to migrate."""
    return create_app(Settings(), migrate=False)
