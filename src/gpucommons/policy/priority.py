"""Priority classes: who is considered first, and who may displace whom (Kueue's
``WorkloadPriorityClass``, Slurm's QOS priority and ``PreemptMode``).

A class has a priority and a preemption rule. The cycle considers pending jobs by descending class
priority, each class in the policy's own order (so a policy's fairness holds within a class). A job
whose class ``preempts_lower`` may displace running preemptible jobs of strictly lower priority,
lowest priority first and newest first, when it does not fit otherwise; and no policy preemptor
(LAS, reclaim) ever displaces a job of higher priority than the job it makes room for.

The operator defines the table (``GPUC_PRIORITY_CLASSES``; design note 0006); who may *submit* a
privileged class is a question of roles, answered by the service, not here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gpucommons.errors import InvalidRequestError

DEFAULT_CLASS = "normal"
CLASS_NAMES = ("low", DEFAULT_CLASS, "high")  # the names a job may carry (the service stores these)


@dataclass(frozen=True, slots=True)
class PriorityClass:
    name: str
    priority: int
    preempts_lower: bool = False


@dataclass(frozen=True)
class PriorityClasses:
    """The class table. A job naming a class the table lacks is treated as the default class."""

    classes: tuple[PriorityClass, ...] = (
        PriorityClass("low", 0),
        PriorityClass(DEFAULT_CLASS, 100),
        PriorityClass("high", 1000, preempts_lower=True),
    )
    _by_name: Mapping[str, PriorityClass] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {c.name: c for c in self.classes}
        if len(by_name) != len(self.classes):
            raise InvalidRequestError("priority classes: a class name is given twice")
        if DEFAULT_CLASS not in by_name:
            raise InvalidRequestError(f"priority classes: the table must define {DEFAULT_CLASS!r}")
        object.__setattr__(self, "_by_name", by_name)

    def of(self, name: str) -> PriorityClass:
        return self._by_name.get(name) or self._by_name[DEFAULT_CLASS]

    @property
    def default(self) -> PriorityClass:
        return self._by_name[DEFAULT_CLASS]

    @property
    def any_preempts(self) -> bool:
        return any(c.preempts_lower for c in self.classes)

    @classmethod
    def parse(cls, text: str, known: Iterable[str] | None = None) -> PriorityClasses:
        """``"low=0,normal=100,high=1000:preempts"``: name=priority, ``:preempts`` where the class may
        displace lower ones. ``known``: the only names allowed (the service stores three)."""
        allowed = None if known is None else set(known)
        classes = []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            name, sep, rest = item.partition("=")
            value, _, flag = rest.partition(":")
            name = name.strip()
            if not sep or not name:
                raise InvalidRequestError(f"priority class {item!r}: write name=priority[:preempts]")
            if allowed is not None and name not in allowed:
                raise InvalidRequestError(f"priority class {name!r}: must be one of {sorted(allowed)}")
            try:
                priority = int(value)
            except ValueError:
                raise InvalidRequestError(
                    f"priority class {name!r}: priority {value!r} is not an integer"
                ) from None
            if flag.strip() not in ("", "preempts"):
                raise InvalidRequestError(f"priority class {name!r}: unknown rule {flag.strip()!r}")
            classes.append(PriorityClass(name, priority, flag.strip() == "preempts"))
        return cls(tuple(classes))


DEFAULT_CLASSES = PriorityClasses()
