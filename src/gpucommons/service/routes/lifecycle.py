"""The award lifecycle by hand and its rule: an admin runs one step (at a given time, for operators
and tests; the server's timer runs the same step on its own) and sets a program's reclaim rule;
anyone signed in reads the rule, as they read the program (design note 0012)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gpucommons.service.auth import AdminDep, PrincipalDep
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.lifecycle import lifecycle_runner
from gpucommons.service.schemas.allocation import ReclaimRead
from gpucommons.service.schemas.common import Id
from gpucommons.service.schemas.lifecycle import (
    LifecycleReportRead,
    LifecycleRun,
    ReclaimRuleRead,
    ReclaimRuleUpdate,
)
from gpucommons.store.calls import ProgramRow, get_program
from gpucommons.store.lifecycle import reclaim_rule, set_reclaim_rule

router = APIRouter(tags=["lifecycle"])


@router.post("/lifecycle/run", responses=error_responses(401, 403, 409, 422))
def run_step(
    _admin: AdminDep, request: Request, now: NowDep, body: LifecycleRun | None = None
) -> LifecycleReportRead:
    """One lifecycle step: expire, reclaim by each program's rule, re-offer what was freed and queue
    the notices due. 409 while another server's timer holds the lifecycle lease."""
    at = body.now if body is not None and body.now is not None else now
    report = lifecycle_runner(request.app).run_step(at)
    return LifecycleReportRead(
        now=at,
        expired=report.expired,
        reclaims=[ReclaimRead.model_validate(r) for r in report.reclaims],
        offered=report.offered,
        notices=report.notices,
    )


def _rule_read(program: ProgramRow) -> ReclaimRuleRead:
    rule = reclaim_rule(program)
    return ReclaimRuleRead(
        program_id=program.id,
        table=rule.table.to_json(),
        default_table=program.reclaim_table is None,
        period_days=rule.schedule.period_days,
        warning_days=rule.schedule.warning_days,
    )


@router.get("/programs/{program_id:int}/reclaim-rule", responses=error_responses(401, 404, 422))
def get_rule(program_id: Id, _principal: PrincipalDep, session: SessionDep) -> ReclaimRuleRead:
    return _rule_read(get_program(session, program_id))


@router.put("/programs/{program_id:int}/reclaim-rule", responses=error_responses(401, 403, 404, 422))
def put_rule(
    program_id: Id, body: ReclaimRuleUpdate, _admin: AdminDep, session: SessionDep
) -> ReclaimRuleRead:
    """Replace the program's rule; the table must be monotone (see ``gpucommons.reclaiming``)."""
    program = set_reclaim_rule(session, program_id, body.table, body.period_days, body.warning_days)
    session.commit()
    return _rule_read(program)
