"""The web dashboard at ``/ui`` (design note 0015): server-rendered pages for members, reviewers and
admins, over the API's own route functions, so a page sees and does exactly what the API lets its
viewer see and do.

``create_ui(api)`` builds it as a sub-application mounted on the API. It shares the API's state
(database sessions, clock, cluster, write lock, the scheduler's wake-up), and keeps its own error
pages: a refusal is an HTML page with the API's status and one-line message, and a missing or
rejected sign-in sends the browser to the sign-in page. Its routes are outside the OpenAPI document.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from gpucommons.service.ui import admin, jobs, reviews, signin, usage
from gpucommons.service.ui.rendering import STATIC_DIR, install_page_errors

UI_PATH = "/ui"


def create_ui(api: FastAPI) -> FastAPI:
    """The dashboard, to mount at ``UI_PATH`` on ``api``."""
    ui = FastAPI(title="gpucommons dashboard", openapi_url=None, docs_url=None, redoc_url=None)
    ui.state = api.state
    install_page_errors(ui)
    for router in (signin.router, jobs.router, usage.router, reviews.router, admin.router):
        ui.include_router(router)
    ui.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return ui
