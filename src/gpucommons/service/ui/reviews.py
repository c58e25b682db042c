"""Programs, their proposals with scores, and the review form. Everyone signed in sees the programs
and the proposals the API shows them (a member: their projects'); reviewers and admins also see each
proposal's reviews and score it. Scoring goes through ``POST /proposals/{id}/reviews``'s route
function, with its checks (reviewers and admins only; never a proposal of one's own project; only a
submitted proposal; 0 to 100)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from gpucommons.errors import InvalidRequestError
from gpucommons.service.auth import Principal
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.routes import programs as program_routes
from gpucommons.service.routes import projects as project_routes
from gpucommons.service.routes import proposals as proposal_routes
from gpucommons.service.schemas.allocation import ProposalRead, ReviewCreate, ReviewRead
from gpucommons.service.schemas.common import MAX_ID
from gpucommons.service.ui.rendering import render, see_other
from gpucommons.service.ui.signin import CheckedFormDep, CsrfDep, ViewerDep

router = APIRouter()
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]


@dataclass(frozen=True)
class ProposalLine:
    """A proposal, its project's name and, for reviewers and admins, its reviews."""

    proposal: ProposalRead
    project: str
    reviews: tuple[ReviewRead, ...] | None  # None: the viewer does not see reviews

    @property
    def mean_score(self) -> float | None:
        return sum(r.score for r in self.reviews) / len(self.reviews) if self.reviews else None

    def score_by(self, user_id: int) -> int | None:
        return next((r.score for r in self.reviews or () if r.reviewer_id == user_id), None)


def _project_names(who: Principal, session: Session) -> dict[int, str]:
    return {p.id: p.name for p in project_routes.list_projects(who, session)}


def _line(who: Principal, session: Session, proposal: ProposalRead, names: dict[int, str]) -> ProposalLine:
    reviews = tuple(proposal_routes.list_reviews(proposal.id, who, session)) if who.is_staff else None
    return ProposalLine(proposal, names.get(proposal.project_id, str(proposal.project_id)), reviews)


@router.get("/programs")
def programs_page(request: Request, who: ViewerDep, csrf: CsrfDep, session: SessionDep) -> Response:
    programs = program_routes.list_programs(who, session)
    counts: dict[int, int] = {}
    for proposal in proposal_routes.list_proposals(who, session, None):
        counts[proposal.program_id] = counts.get(proposal.program_id, 0) + 1
    context = {"programs": programs, "counts": counts}
    return render(request, "programs.html", context, viewer=who, csrf=csrf)


@router.get("/programs/{program_id}")
def program_page(
    request: Request, program_id: ObjectId, who: ViewerDep, csrf: CsrfDep, session: SessionDep
) -> Response:
    program = program_routes.get_program(program_id, who, session)
    names = _project_names(who, session)
    lines = [_line(who, session, p, names) for p in proposal_routes.list_proposals(who, session, program_id)]
    if who.is_staff:  # best first, as the ranking would take them
        lines.sort(key=lambda x: (x.mean_score is None, -(x.mean_score or 0.0), x.proposal.id))
    context = {"program": program, "lines": lines}
    return render(request, "program.html", context, viewer=who, csrf=csrf)


@router.get("/proposals/{proposal_id}")
def proposal_page(
    request: Request, proposal_id: ObjectId, who: ViewerDep, csrf: CsrfDep, session: SessionDep
) -> Response:
    proposal = proposal_routes.get_proposal(proposal_id, who, session)
    program = program_routes.get_program(proposal.program_id, who, session)
    line = _line(who, session, proposal, _project_names(who, session))
    context = {"program": program, "line": line}
    return render(request, "proposal.html", context, viewer=who, csrf=csrf)


def _review(fields: dict[str, str]) -> ReviewCreate:
    raw = fields.get("score", "").strip()
    if not raw.isdigit():
        raise InvalidRequestError(f"score must be a whole number from 0 to 100, got {raw!r}")
    try:
        return ReviewCreate(score=int(raw), comment=fields.get("comment", ""))
    except ValidationError as bad:
        said = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in bad.errors())
        raise InvalidRequestError(said) from bad


@router.post("/proposals/{proposal_id}/reviews")
def submit_review(
    request: Request,
    proposal_id: ObjectId,
    who: ViewerDep,
    fields: CheckedFormDep,
    session: SessionDep,
    now: NowDep,
) -> Response:
    proposal_routes.review(proposal_id, _review(fields), who, session, now)
    return see_other(request, f"/proposals/{proposal_id}")
