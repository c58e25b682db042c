"""Proposals and their reviews. A project's PI submits; members see their projects' proposals;
reviewers and admins see all and score them; admins reject. A reviewer who belongs to the proposing
project may not score it."""

from __future__ import annotations

from fastapi import APIRouter

from gpucommons.errors import PermissionDeniedError
from gpucommons.service.auth import AdminDep, PrincipalDep, require_pi, require_project_reader, require_staff
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.schemas.allocation import ProposalCreate, ProposalRead, ReviewCreate, ReviewRead
from gpucommons.store import programs as program_repo
from gpucommons.store import repos

router = APIRouter(prefix="/proposals", tags=["allocation"])


@router.post("", status_code=201)
def submit(body: ProposalCreate, principal: PrincipalDep, session: SessionDep, now: NowDep) -> ProposalRead:
    repos.get_project(session, body.project_id)
    require_pi(principal, body.project_id)
    row = program_repo.submit_proposal(
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


@router.get("")
def list_proposals(
    principal: PrincipalDep, session: SessionDep, program_id: int | None = None
) -> list[ProposalRead]:
    rows = program_repo.list_proposals(session, principal.visible_project_ids(), program_id)
    return [ProposalRead.model_validate(r) for r in rows]


@router.get("/{proposal_id}")
def get_proposal(proposal_id: int, principal: PrincipalDep, session: SessionDep) -> ProposalRead:
    row = program_repo.get_proposal(session, proposal_id)
    require_project_reader(principal, row.project_id)
    return ProposalRead.model_validate(row)


@router.post("/{proposal_id}/reject")
def reject(proposal_id: int, _admin: AdminDep, session: SessionDep) -> ProposalRead:
    row = program_repo.reject_proposal(session, proposal_id)
    session.commit()
    return ProposalRead.model_validate(row)


@router.post("/{proposal_id}/reviews", status_code=201)
def review(
    proposal_id: int, body: ReviewCreate, principal: PrincipalDep, session: SessionDep, now: NowDep
) -> ReviewRead:
    proposal = program_repo.get_proposal(session, proposal_id)
    require_staff(principal)
    if proposal.project_id in principal.projects:
        raise PermissionDeniedError(
            f"user {principal.name!r} belongs to project {proposal.project_id} and cannot score its proposal"
        )
    row = program_repo.score_proposal(session, proposal_id, principal.user_id, body.score, body.comment, now)
    session.commit()
    return ReviewRead.model_validate(row)


@router.get("/{proposal_id}/reviews")
def list_reviews(proposal_id: int, principal: PrincipalDep, session: SessionDep) -> list[ReviewRead]:
    program_repo.get_proposal(session, proposal_id)
    require_staff(principal)
    return [ReviewRead.model_validate(r) for r in program_repo.list_reviews(session, proposal_id)]
