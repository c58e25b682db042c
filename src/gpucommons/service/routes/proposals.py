"""Proposals and their reviews. A project's PI submits; members see their projects' proposals;
reviewers and admins see all and score them; admins reject. A reviewer who belongs to the proposing
project may not score it."""

from __future__ import annotations

from fastapi import APIRouter

from gpucommons.errors import PermissionDeniedError
from gpucommons.service.auth import AdminDep, PrincipalDep, require_pi, require_project_reader, require_staff
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.schemas.allocation import ProposalCreate, ProposalRead, ReviewCreate, ReviewRead
from gpucommons.service.schemas.common import Id
from gpucommons.store import calls, tenancy
from gpucommons.store.base import not_found

router = APIRouter(prefix="/proposals", tags=["allocation"])


@router.post("", status_code=201, responses=error_responses(401, 403, 404, 409, 422))
def submit(body: ProposalCreate, principal: PrincipalDep, session: SessionDep, now: NowDep) -> ProposalRead:
    tenancy.get_project(session, body.project_id)
    require_pi(principal, body.project_id)
    row = calls.submit_proposal(
        session,
        body.program_id,
        body.project_id,
        principal.user_id,
        body.requested_gpus,
        body.justification,
        now,
    )
    session.commit()
    return ProposalRead.model_validate(row)


@router.get("", responses=error_responses(401, 422))
def list_proposals(
    principal: PrincipalDep, session: SessionDep, program_id: Id | None = None
) -> list[ProposalRead]:
    rows = calls.list_proposals(session, principal.visible_project_ids(), program_id)
    return [ProposalRead.model_validate(r) for r in rows]


@router.get("/{proposal_id:int}", responses=error_responses(401, 403, 404, 422))
def get_proposal(proposal_id: Id, principal: PrincipalDep, session: SessionDep) -> ProposalRead:
    row = calls.get_proposal(session, proposal_id)
    require_project_reader(principal, row.project_id, not_found("proposal", proposal_id))
    return ProposalRead.model_validate(row)


@router.post("/{proposal_id:int}/reject", responses=error_responses(401, 403, 404, 409, 422))
def reject(proposal_id: Id, _admin: AdminDep, session: SessionDep) -> ProposalRead:
    row = calls.reject_proposal(session, proposal_id)
    session.commit()
    return ProposalRead.model_validate(row)


@router.post(
    "/{proposal_id:int}/reviews", status_code=201, responses=error_responses(401, 403, 404, 409, 422)
)
def review(
    proposal_id: Id, body: ReviewCreate, principal: PrincipalDep, session: SessionDep, now: NowDep
) -> ReviewRead:
    proposal = calls.get_proposal(session, proposal_id)
    require_staff(principal, proposal.project_id, not_found("proposal", proposal_id))
    if proposal.project_id in principal.projects:
        raise PermissionDeniedError(
            f"user {principal.name!r} belongs to project {proposal.project_id} and cannot score its proposal"
        )
    row = calls.score_proposal(session, proposal_id, principal.user_id, body.score, body.comment, now)
    session.commit()
    return ReviewRead.model_validate(row)


@router.get("/{proposal_id:int}/reviews", responses=error_responses(401, 403, 404, 422))
def list_reviews(proposal_id: Id, principal: PrincipalDep, session: SessionDep) -> list[ReviewRead]:
    proposal = calls.get_proposal(session, proposal_id)
    require_staff(principal, proposal.project_id, not_found("proposal", proposal_id))
    return [ReviewRead.model_validate(r) for r in calls.list_reviews(session, proposal_id)]
