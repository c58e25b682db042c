"""Pure allocation rules of a call for proposals: ranking by score, granting in whole units within the
program capacity and per-organisation caps, and how much unused guaranteed capacity to take back. No
database or clock here; ``store/awards.py`` feeds it rows. What an award's GPU time costs after the
program's discounts is ``gpucommons.metering.pricing``, the commons' one pricing function.

The rules follow how national calls hand out GPUs: whole 8-GPU servers, a mean expert score with a bonus
for applicants outside the capital region, a cap so no organisation takes a large share, and unused
servers reclaimed and re-offered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A scored proposal. ``order`` breaks ties between equal scores (earlier submission first)."""

    proposal_id: int
    org_id: int
    requested_gpus: int
    mean_score: float
    non_capital: bool
    order: int


@dataclass(frozen=True)
class AwardRules:
    """What bounds an auto-award round: free capacity, the unit, the per-organisation cap and the
    score bonus for non-capital applicants."""

    capacity_left_gpus: int
    unit_gpus: int
    cap_per_org_gpus: int | None = None
    non_capital_bonus: float = 0.0


@dataclass(frozen=True)
class Grant:
    proposal_id: int
    gpus: int
    score: float


def ranking_score(candidate: Candidate, non_capital_bonus: float) -> float:
    return candidate.mean_score + (non_capital_bonus if candidate.non_capital else 0.0)


def floor_to_unit(gpus: int, unit_gpus: int) -> int:
    return (max(gpus, 0) // unit_gpus) * unit_gpus


def grant_by_score(
    candidates: Iterable[Candidate], rules: AwardRules, committed_by_org: Mapping[int, int]
) -> list[Grant]:
    """Walk proposals from the best score down, granting each the most whole units it asked for that
    still fit the remaining capacity and its organisation's remaining cap. A proposal that cannot get
    one unit is skipped (it may get one when capacity is reclaimed), and lower-ranked smaller requests
    can still fit after it."""
    ranked = sorted(
        candidates, key=lambda c: (-ranking_score(c, rules.non_capital_bonus), c.order, c.proposal_id)
    )
    left = rules.capacity_left_gpus
    by_org = dict(committed_by_org)
    grants: list[Grant] = []
    for cand in ranked:
        limit = min(cand.requested_gpus, left)
        if rules.cap_per_org_gpus is not None:
            limit = min(limit, rules.cap_per_org_gpus - by_org.get(cand.org_id, 0))
        gpus = floor_to_unit(limit, rules.unit_gpus)
        if gpus <= 0:
            continue
        grants.append(Grant(cand.proposal_id, gpus, ranking_score(cand, rules.non_capital_bonus)))
        left -= gpus
        by_org[cand.org_id] = by_org.get(cand.org_id, 0) + gpus
    return grants


def reclaimable_gpus(guaranteed_gpus: int, utilization: float, unit_gpus: int) -> int:
    """GPUs to take back from a guarantee used at ``utilization`` (0..1): keep the whole units the used
    GPUs need (rounded up) and return the rest."""
    used_gpus = max(0.0, min(utilization, 1.0)) * guaranteed_gpus
    keep = min(guaranteed_gpus, math.ceil(used_gpus / unit_gpus - 1e-9) * unit_gpus)
    return guaranteed_gpus - keep
