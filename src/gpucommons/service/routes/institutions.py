"""Institutions: admins register them; any signed-in user can list them (kind and region are public)."""

from __future__ import annotations

from fastapi import APIRouter

from gpucommons.service.auth import AdminDep, PrincipalDep
from gpucommons.service.deps import SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.schemas.tenancy import InstitutionCreate, InstitutionRead
from gpucommons.store import tenancy

router = APIRouter(prefix="/institutions", tags=["tenancy"])


@router.post("", status_code=201, responses=error_responses(401, 403, 409, 422))
def create_institution(body: InstitutionCreate, _admin: AdminDep, session: SessionDep) -> InstitutionRead:
    row = tenancy.create_institution(session, body.name, body.kind, body.region, body.youth_startup)
    session.commit()
    return InstitutionRead.model_validate(row)


@router.get("", responses=error_responses(401))
def list_institutions(_principal: PrincipalDep, session: SessionDep) -> list[InstitutionRead]:
    return [InstitutionRead.model_validate(r) for r in tenancy.list_institutions(session)]
