"""The outbox of notices (design note 0012): an admin sees every notice, a PI those of their projects,
anyone else none."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gpucommons.service.auth import PrincipalDep
from gpucommons.service.deps import SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.schemas.lifecycle import NoticeRead
from gpucommons.store.notices import list_notices

router = APIRouter(prefix="/notices", tags=["lifecycle"])


@router.get("", responses=error_responses(401, 422))
def notices(
    principal: PrincipalDep,
    session: SessionDep,
    unsent: bool = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[NoticeRead]:
    """The newest first; ``unsent``: only those not delivered yet."""
    scope = None if principal.is_admin else {p for p, role in principal.projects.items() if role == "pi"}
    return [NoticeRead.model_validate(r) for r in list_notices(session, scope, unsent, limit)]
