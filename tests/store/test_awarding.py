"""The pure allocation rules: ranking, whole units, capacity, per-organisation caps, regional bonus and
how much unused capacity is reclaimed (pricing is ``tests/metering/test_pricing.py``)."""

from __future__ import annotations

import pytest

from gpucommons.awarding import (
    AwardRules,
    Candidate,
    grant_by_score,
    reclaimable_gpus,
)


def cand(pid: int, org: int, gpus: int, score: float, non_capital: bool = False) -> Candidate:
    return Candidate(pid, org, gpus, score, non_capital, order=pid)


@pytest.mark.parametrize(
    ("name", "candidates", "rules", "committed", "want"),
    [
        (
            "best score first, within capacity",
            [cand(1, 1, 16, 70), cand(2, 2, 16, 90), cand(3, 3, 16, 80)],
            AwardRules(32, 8),
            {},
            [(2, 16), (3, 16)],
        ),
        (
            "partial grant rounded down to whole units",
            [cand(1, 1, 32, 90), cand(2, 2, 16, 80)],
            AwardRules(44, 8),
            {},
            [(1, 32), (2, 8)],
        ),
        (
            "per-organisation cap counts earlier awards",
            [cand(1, 1, 32, 90), cand(2, 1, 16, 85), cand(3, 2, 16, 80)],
            AwardRules(64, 8, cap_per_org_gpus=24),
            {1: 8},
            [(1, 16), (3, 16)],
        ),
        (
            "non-capital bonus reorders close scores",
            [cand(1, 1, 16, 80), cand(2, 2, 16, 76, non_capital=True)],
            AwardRules(16, 8, non_capital_bonus=5),
            {},
            [(2, 16)],
        ),
        (
            "a smaller request below still fits after a skipped one",
            [cand(1, 1, 16, 90), cand(2, 2, 16, 80), cand(3, 3, 8, 70)],
            AwardRules(24, 8, cap_per_org_gpus=8),
            {},
            [(1, 8), (2, 8), (3, 8)],
        ),
        ("no capacity, no grants", [cand(1, 1, 8, 99)], AwardRules(0, 8), {}, []),
    ],
)
def test_grant_by_score(
    name: str,
    candidates: list[Candidate],
    rules: AwardRules,
    committed: dict[int, int],
    want: list[tuple[int, int]],
) -> None:
    grants = grant_by_score(candidates, rules, committed)
    assert [(g.proposal_id, g.gpus) for g in grants] == want, name
    assert sum(g.gpus for g in grants) <= rules.capacity_left_gpus
    assert all(g.gpus % rules.unit_gpus == 0 for g in grants)


@pytest.mark.parametrize(
    ("guaranteed", "utilization", "want"),
    [(16, 0.0, 16), (16, 0.2, 8), (16, 0.5, 8), (16, 0.51, 0), (24, 0.3, 16), (8, 0.1, 0)],
)
def test_reclaimable_keeps_the_units_in_use(guaranteed: int, utilization: float, want: int) -> None:
    assert reclaimable_gpus(guaranteed, utilization, 8) == want
