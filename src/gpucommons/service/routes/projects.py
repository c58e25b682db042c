"""Projects and their members. Admins create projects; PIs (and admins) add and remove members;
members see their own projects, reviewers and admins see all."""

from __future__ import annotations

from fastapi import APIRouter, Response

from gpucommons.service.auth import AdminDep, PrincipalDep, require_pi, require_project_reader
from gpucommons.service.deps import SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.schemas.common import Id
from gpucommons.service.schemas.tenancy import MemberAdd, MemberRead, ProjectCreate, ProjectRead
from gpucommons.store import tenancy

router = APIRouter(prefix="/projects", tags=["tenancy"])


@router.post("", status_code=201, responses=error_responses(401, 403, 404, 409, 422))
def create_project(body: ProjectCreate, _admin: AdminDep, session: SessionDep) -> ProjectRead:
    row = tenancy.create_project(session, body.name, body.institution_id, body.sovereign)
    session.commit()
    return ProjectRead.model_validate(row)


@router.get("", responses=error_responses(401))
def list_projects(principal: PrincipalDep, session: SessionDep) -> list[ProjectRead]:
    rows = tenancy.list_projects(session, principal.visible_project_ids())
    return [ProjectRead.model_validate(r) for r in rows]


@router.get("/{project_id:int}", responses=error_responses(401, 403, 404, 422))
def get_project(project_id: Id, principal: PrincipalDep, session: SessionDep) -> ProjectRead:
    row = tenancy.get_project(session, project_id)
    require_project_reader(principal, project_id)
    return ProjectRead.model_validate(row)


@router.get("/{project_id:int}/members", responses=error_responses(401, 403, 404, 422))
def list_members(project_id: Id, principal: PrincipalDep, session: SessionDep) -> list[MemberRead]:
    tenancy.get_project(session, project_id)
    require_project_reader(principal, project_id)
    return [
        MemberRead(user_id=u.id, name=u.name, role=m.role)
        for m, u in tenancy.list_members(session, project_id)
    ]


@router.post("/{project_id:int}/members", status_code=201, responses=error_responses(401, 403, 404, 422))
def add_member(project_id: Id, body: MemberAdd, principal: PrincipalDep, session: SessionDep) -> MemberRead:
    tenancy.get_project(session, project_id)
    require_pi(principal, project_id)
    row = tenancy.set_membership(session, project_id, body.user_id, body.role)
    user = tenancy.get_user(session, row.user_id)
    session.commit()
    return MemberRead(user_id=user.id, name=user.name, role=row.role)


@router.delete(
    "/{project_id:int}/members/{user_id:int}", status_code=204, responses=error_responses(401, 403, 404, 422)
)
def remove_member(project_id: Id, user_id: Id, principal: PrincipalDep, session: SessionDep) -> Response:
    tenancy.get_project(session, project_id)
    require_pi(principal, project_id)
    tenancy.remove_membership(session, project_id, user_id)
    session.commit()
    return Response(status_code=204)
