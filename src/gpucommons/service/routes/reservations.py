"""Reservations (design note 0016, "Reservations in the service"): admins reserve for any project, a
project's PIs for their own within its awards; they and the admins cancel. A project's members and
PIs, reviewers and admins read them; to anyone else they do not exist (404). Creating or cancelling
one wakes the scheduler, which decides on the changed reservations at once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucommons.service.auth import Principal, PrincipalDep, require_pi, require_project_reader
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.routes.common import ClusterDep
from gpucommons.service.routes.jobs import ProjectRef, no_project, project_by_ref, wake_scheduler
from gpucommons.service.schemas.common import Id
from gpucommons.service.schemas.reservations import ReservationCreate, ReservationRead
from gpucommons.store import reservations
from gpucommons.store.base import not_found
from gpucommons.store.reservations import ReservationRow
from gpucommons.store.tenancy import ProjectRow

router = APIRouter(prefix="/reservations", tags=["reservations"])


def _reads(session: Session, rows: Sequence[ReservationRow], now: datetime) -> list[ReservationRead]:
    query = select(ProjectRow.id, ProjectRow.name).where(ProjectRow.id.in_({r.project_id for r in rows}))
    names = {project_id: name for project_id, name in session.execute(query)}
    out = []
    for row in rows:
        window = row.window_at(now)
        out.append(
            ReservationRead(
                id=row.id,
                project_id=row.project_id,
                project=names.get(row.project_id, ""),
                model=row.model,
                gpus=row.gpus,
                start_at=row.start_at,
                end_at=row.end_at,
                every_s=row.every_s,
                occurrences=row.occurrences,
                within=row.within,
                lend_idle=row.lend_idle,
                created_by=row.created_by,
                created_at=row.created_at,
                cancelled_at=row.cancelled_at,
                last_end_at=row.last_end_at,
                state=row.state_at(now),
                next_start_at=window[0] if window else None,
                next_end_at=window[1] if window else None,
            )
        )
    return out


def _visible(session: Session, principal: Principal, reservation_id: int) -> ReservationRow:
    row = reservations.get_reservation(session, reservation_id)
    require_project_reader(principal, row.project_id, not_found("reservation", reservation_id))
    return row


@router.post("", status_code=201, responses=error_responses(401, 403, 404, 409, 422))
def create_reservation(
    body: ReservationCreate,
    principal: PrincipalDep,
    session: SessionDep,
    now: NowDep,
    cluster: ClusterDep,
    request: Request,
) -> ReservationRead:
    """Reserve whole nodes of a model for a project. 422: a model the cluster lacks, GPUs that are not
    whole nodes or more than the model's pool, a start in the past, a repetition shorter than an
    occurrence, a domain or block too small; 409: it overlaps other reservations beyond the pool; 403:
    a PI beyond the project's awards, or neither its PI nor an admin."""
    project = project_by_ref(session, body.project)
    require_pi(principal, project.id, no_project(body.project))
    spec = reservations.ReservationSpec(
        project_id=project.id,
        model=body.model,
        gpus=body.gpus,
        start_at=body.start_at,
        duration_s=float(body.duration_s),
        every_s=body.every_s,
        occurrences=body.occurrences,
        within=body.within,
        lend_idle=body.lend_idle,
    )
    with request.app.state.write_lock:  # SQLite: one writer thread at a time, see create_app
        row = reservations.create_reservation(
            session, cluster, spec, principal.user_id, now, within_award=not principal.is_admin
        )
        session.commit()
    wake_scheduler(request)
    return _reads(session, [row], now)[0]


@router.get("", responses=error_responses(401, 404, 422))
def list_reservations(
    principal: PrincipalDep,
    session: SessionDep,
    now: NowDep,
    project: ProjectRef = None,
    include_past: Annotated[bool, Query(alias="all", description="cancelled and ended ones too")] = False,
) -> list[ReservationRead]:
    """The reservations the caller may see (staff: all; others: their projects'), by id; by default
    only those not cancelled with an occurrence still to end."""
    visible = principal.visible_project_ids()
    if project is not None:
        row = project_by_ref(session, project)
        require_project_reader(principal, row.id, no_project(project))
        visible = {row.id}
    found = reservations.list_reservations(session, visible, None if include_past else now)
    return _reads(session, found, now)


@router.get("/{reservation_id:int}", responses=error_responses(401, 404, 422))
def show_reservation(
    reservation_id: Id, principal: PrincipalDep, session: SessionDep, now: NowDep
) -> ReservationRead:
    return _reads(session, [_visible(session, principal, reservation_id)], now)[0]


@router.post("/{reservation_id:int}/cancel", responses=error_responses(401, 403, 404, 422))
def cancel_reservation(
    reservation_id: Id, principal: PrincipalDep, session: SessionDep, now: NowDep, request: Request
) -> ReservationRead:
    """Release the reservation's nodes from now on; cancelling again changes nothing. Its project's
    PIs and admins; members and reviewers get 403."""
    row = _visible(session, principal, reservation_id)
    require_pi(principal, row.project_id, not_found("reservation", reservation_id))
    with request.app.state.write_lock:
        row = reservations.cancel_reservation(session, reservation_id, now)
        session.commit()
    wake_scheduler(request)
    return _reads(session, [row], now)[0]
