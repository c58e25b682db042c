"""``gpuc plan size``: the smallest pool, in whole servers, whose run meets every target, found by a
monotone search instead of a grid.

The range runs from the fewest servers that hold every guarantee (below that an award, a consortium's
included, cannot be honoured) to ``max_servers``. The top is tried first: if it misses, no size in the
range meets the targets. Each round then tries ``workers`` sizes evenly spaced strictly between the
largest size known to miss and the smallest known to meet (bisection with one worker), until they are
one server apart; the answer is exact to one server for the scenario's seed. Waits fall as the pool
grows for a fixed workload, but not strictly at every step (a different placement can reorder a queue),
so the check re-runs the answer and one server fewer, uncached, and says whether the target is met
there and missed below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpucommons.errors import InvalidRequestError
from gpucommons.planner.runs import RunCache, RunSpec, run_all, spec_for
from gpucommons.planner.scenario import GPUS_PER_SERVER, PlanScenario
from gpucommons.planner.targets import Target, Verdict, judge
from gpucommons.planner.workload import generate_workload

TOLERANCE_SERVERS = 1


@dataclass(frozen=True)
class SizeSearch:
    scenario: PlanScenario
    targets: list[Target]
    policy: str
    seed: int
    max_servers: int
    min_servers: int | None = None
    workers: int = 1


@dataclass
class SizeAnswer:
    servers: int
    run: dict[str, Any]
    verdicts: list[Verdict]
    tried: dict[int, bool] = field(default_factory=dict)  # servers -> met
    frontier: dict[int, list[Verdict]] = field(default_factory=dict)  # servers -> each target's figure
    check: list[tuple[int, list[Verdict]]] = field(default_factory=list)


def floor_servers(scenario: PlanScenario, seed: int) -> int:
    """The fewest servers that hold every guarantee of the scenario's call."""
    guaranteed = generate_workload(scenario.spec, seed).guaranteed_gpus
    return max(1, math.ceil(guaranteed / GPUS_PER_SERVER))


def between(lo: int, hi: int, count: int) -> list[int]:
    """Up to ``count`` sizes evenly spaced strictly between ``lo`` and ``hi``."""
    gap = hi - lo
    if gap <= 1:
        return []
    points = {lo + round(gap * (i + 1) / (count + 1)) for i in range(count)}
    return sorted(p for p in points if lo < p < hi)


def search(
    ask: SizeSearch, cache: RunCache, on_done: Callable[[RunSpec, bool], None] | None = None
) -> SizeAnswer:
    groups = ask.scenario.groups()
    lo = ask.min_servers if ask.min_servers is not None else floor_servers(ask.scenario, ask.seed)
    if ask.max_servers < lo:
        raise InvalidRequestError(
            f"--max-servers {ask.max_servers} is below the search's floor of {lo} servers"
        )
    tried: dict[int, bool] = {}
    frontier: dict[int, list[Verdict]] = {}
    runs: dict[int, dict[str, Any]] = {}

    def evaluate(sizes: Sequence[int]) -> None:
        specs = [spec_for(ask.scenario, ask.policy, s, ask.seed) for s in sizes]
        for size, result in zip(sizes, run_all(specs, cache, ask.workers, on_done), strict=True):
            runs[size] = result
            frontier[size] = judge(result, ask.targets, groups)
            tried[size] = all(v.met for v in frontier[size])

    evaluate(sorted({lo, ask.max_servers}))
    if not tried[ask.max_servers]:
        missed = [v for v in judge(runs[ask.max_servers], ask.targets, groups) if not v.met]
        shown = "; ".join(f"{v.target.text}: {format_wait(v.measured_s)}" for v in missed)
        raise InvalidRequestError(
            f"no size from {lo} to {ask.max_servers} servers meets the targets ({shown} at "
            f"{ask.max_servers}); raise --max-servers or relax the target"
        )
    hi = lo if tried[lo] else ask.max_servers
    bottom = lo
    while not tried[lo] and hi - lo > TOLERANCE_SERVERS:
        points = between(lo, hi, max(1, ask.workers))
        evaluate(points)
        hi = min([p for p in points if tried[p]] + [hi])
        lo = max([p for p in points if not tried[p] and p < hi] + [lo])
    answer = SizeAnswer(hi, runs[hi], frontier[hi], tried, frontier)
    checked = [hi] + ([hi - 1] if hi - 1 >= bottom else [])
    specs = [spec_for(ask.scenario, ask.policy, s, ask.seed) for s in checked]
    for size, result in zip(checked, run_all(specs, cache, ask.workers, on_done, refresh=True), strict=True):
        answer.check.append((size, judge(result, ask.targets, groups)))
    return answer


def format_wait(seconds: float) -> str:
    return "never (unfinished jobs)" if math.isinf(seconds) else f"{seconds / 3600:,.1f} h"
