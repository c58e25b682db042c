"""Quota admission: within quota starts guaranteed, beyond it borrows (or waits when borrowing is off or
past its limit); the gate keeps count of what this cycle started."""

from __future__ import annotations

import pytest

from gpucommons.policy.constraints import Commons
from gpucommons.policy.cycle import schedule
from gpucommons.policy.decisions import PendingReason, Start
from gpucommons.policy.protocols import Admitted
from gpucommons.policy.quota import QuotaStage
from gpucommons.policy.registry import build_policy
from tests.conftest import make_cluster, make_job, make_snapshot, pending, running

CLUSTER = make_cluster(("p", 2, 8))
A_RUNNING = running(make_job(100, 2, tenant="a"), [(0, (0, 1))])  # tenant a holds 2 of its 4


@pytest.mark.parametrize(
    ("name", "admission", "tenant", "gpus", "want_code", "want_borrowing"),
    [
        ("within quota: guaranteed", QuotaStage(), "a", 2, None, False),
        ("beyond quota: borrows", QuotaStage(), "a", 3, None, True),
        ("no quota at all: borrows", QuotaStage(), "z", 1, None, True),
        ("beyond quota, borrowing off: waits", QuotaStage(allow_borrowing=False), "a", 3, "quota", False),
        ("borrowing within the limit", QuotaStage(borrowing_limit_gpus=1), "a", 3, None, True),
        ("borrowing past the limit: waits", QuotaStage(borrowing_limit_gpus=1), "a", 4, "quota", False),
    ],
)
def test_admission_check(
    name: str, admission: QuotaStage, tenant: str, gpus: int, want_code: str | None, want_borrowing: bool
) -> None:
    snapshot = make_snapshot(CLUSTER, busy=(A_RUNNING,), quotas={"a": 4})
    job = pending(make_job(1, gpus, tenant=tenant))
    verdict = admission.open(snapshot, 0.0).admit(job, Admitted(job.job))
    assert (verdict.code if isinstance(verdict, PendingReason) else None) == want_code
    assert (isinstance(verdict, Admitted) and verdict.borrowing) is want_borrowing


def test_gate_counts_starts_and_preemptions_of_the_cycle() -> None:
    snapshot = make_snapshot(CLUSTER, busy=(A_RUNNING,), quotas={"a": 4})
    gate = QuotaStage().open(snapshot, 0.0)
    two = make_job(1, 2, tenant="a")
    assert gate.check(two) == (None, False)
    gate.started(Start(two, A_RUNNING.placement))
    assert gate.check(make_job(2, 1, tenant="a")) == (None, True)
    gate.preempted(A_RUNNING)
    assert gate.check(make_job(3, 2, tenant="a")) == (None, False)


def test_starts_within_one_cycle_switch_to_borrowing_at_the_quota() -> None:
    waiting = [make_job(i, 2, tenant="a", submit_s=float(i)) for i in range(1, 4)]
    snapshot = make_snapshot(CLUSTER, waiting, (A_RUNNING,), quotas={"a": 4})
    result = schedule(snapshot, build_policy("quota"), 10.0)
    assert [(s.job.id, s.borrowing) for s in result.starts] == [(1, False), (2, True), (3, True)]


def test_quota_reason_when_borrowing_is_off() -> None:
    config = build_policy("quota", commons=Commons(borrowing=False))
    waiting = [make_job(1, 3, tenant="a"), make_job(2, 1, tenant="b", submit_s=1.0)]
    result = schedule(make_snapshot(CLUSTER, waiting, (A_RUNNING,), quotas={"a": 4, "b": 1}), config, 10.0)
    assert [s.job.id for s in result.starts] == [2]
    reason = result.reason_for(1)
    assert reason is not None and reason.code == "quota" and "a" in reason.detail
