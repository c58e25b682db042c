"""Service targets a pool size must meet, written ``METRIC:GROUP<=VALUE``:

- ``METRIC``: ``pNN-wait`` (the NN-th percentile wait, e.g. ``p90-wait``) or ``avg-wait``;
- ``GROUP``: an institution kind (``university``), a group of kinds (the scenario's ``[groups]``, by
  default ``academia``, ``industry``, ``research``) or ``*`` (every job);
- ``VALUE``: a number with a unit, ``s``, ``m``, ``h`` or ``d`` (``24h``).

E.g. ``p90-wait:academia<=24h``. Waits are of every job of the group: a job that never finished counts
as waiting forever, so starving a group misses its target instead of flattering it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpucommons.errors import InvalidRequestError

UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_PATTERN = re.compile(r"^(p(\d{1,2})-wait|avg-wait):([\w*-]+)<=(\d+(?:\.\d+)?)([smhd])$")
SYNTAX = "METRIC:GROUP<=VALUE, e.g. p90-wait:academia<=24h (METRIC: pNN-wait or avg-wait; unit s, m, h or d)"


@dataclass(frozen=True)
class Target:
    text: str
    percentile: float | None  # None: the mean
    group: str
    limit_s: float

    def measure_s(self, run: Mapping[str, Any], kinds: tuple[str, ...] | None) -> float:
        """The run's figure for this target (``inf`` where an unfinished job decides it)."""
        waits: list[float] = []
        unfinished = 0
        for kind, entry in run["waits"].items():
            if kinds is None or kind in kinds:
                waits.extend(entry["waits_s"])
                unfinished += entry["unfinished"]
        total = len(waits) + unfinished
        if total == 0:
            return 0.0
        if self.percentile is None:
            return math.inf if unfinished else sum(waits) / total
        ordered = sorted(waits) + [math.inf] * unfinished
        rank = max(0, math.ceil(self.percentile / 100 * total) - 1)  # nearest rank
        return ordered[rank]


def parse_target(text: str, groups: Mapping[str, tuple[str, ...]]) -> Target:
    match = _PATTERN.match(text.replace(" ", ""))
    if match is None:
        raise InvalidRequestError(f"--target {text!r} is not {SYNTAX}")
    _metric, percentile, group, value, unit = match.groups()
    if group != "*" and group not in groups:
        raise InvalidRequestError(
            f"--target {text!r}: unknown group {group!r}; known: *, {', '.join(sorted(groups))}"
        )
    if percentile is not None and not 1 <= int(percentile) <= 99:
        raise InvalidRequestError(f"--target {text!r}: the percentile must be 1 to 99")
    return Target(
        text, None if percentile is None else float(percentile), group, float(value) * UNITS_S[unit]
    )


@dataclass(frozen=True)
class Verdict:
    target: Target
    measured_s: float

    @property
    def met(self) -> bool:
        return self.measured_s <= self.target.limit_s


def judge(
    run: Mapping[str, Any], targets: list[Target], groups: Mapping[str, tuple[str, ...]]
) -> list[Verdict]:
    return [Verdict(t, t.measure_s(run, None if t.group == "*" else groups[t.group])) for t in targets]
