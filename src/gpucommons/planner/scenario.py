"""A planning scenario: an allocation call (who was funded, who asked and was not), the pool it runs on
and the demand assumptions, in one TOML file a user can copy and edit.

Format (every key but ``name`` has a default; an unknown key is an error)::

    name = "korea-2026-call"
    cluster = "korea-2026"         # a cluster preset or TOML path: sites and the model mix
    servers = 1307                 # pool size in servers (default: the cluster's); pools scale with it
    npu_share = 0.25               # share of servers on NPU pools (default: as the cluster has it)
    site_caps = false              # keep the cluster's site power caps (a planner sizes them: off)
    period_days = 30               # the demand window: jobs arrive inside it
    seed = 42
    policies = ["static", "commons", "fairshare"]   # what ``gpuc plan compare`` runs
    [[funded]]                     # awarded projects of one institution kind
    kind = "university"
    projects = 99
    servers = 328                  # their awards together, in whole servers
    [[unfunded]]                   # proposals that asked and got nothing: best-effort demand
    kind = "university"
    projects = 224
    servers = 747                  # what they asked for, together
    [consortia]
    teams = 5
    gpus = 1024                    # each team's guarantee
    [demand]                       # see ``DemandSpec``
    [groups]                       # names a target may use for several kinds
    academia = ["university"]
    [capex_krw_per_gpu]            # per model, all-in (servers, network, build-out)
    B200 = 60_000_000

Relative paths (``cluster``) are taken from the scenario file's folder. Errors are one line naming the
file and the field.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpucommons.domain.institution import INSTITUTION_KINDS
from gpucommons.errors import ConfigError, UnknownNameError
from gpucommons.planner.policies import check_policy
from gpucommons.textfile import read_text

SCENARIO_FOLDER = "scenarios"  # under gpucommons/presets
GPUS_PER_SERVER = 8


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ProjectsSpec(_Strict):
    """Projects of one kind: how many, and their awards (or asks) together in whole servers."""

    kind: str
    projects: int = Field(ge=1)
    servers: int = Field(ge=1)

    def model_post_init(self, _context: Any) -> None:
        if self.kind not in INSTITUTION_KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(INSTITUTION_KINDS)}")
        if self.servers < self.projects:
            raise ValueError(f"{self.projects} projects need at least {self.projects} servers")


class ConsortiaSpec(_Strict):
    teams: int = Field(default=0, ge=0)
    gpus: int = Field(default=1024, ge=GPUS_PER_SERVER, multiple_of=GPUS_PER_SERVER)


class DemandSpec(_Strict):
    """The workload generator's assumptions; the shipped scenarios give each one's reasoning.

    ``award_use``: the share of its award's GPU-hours a funded project submits over the period.
    ``unfunded_use``: the same for an unfunded proposal, of what it asked. ``consortium_use``: of a
    consortium's guarantee. ``growth``: multiplies every project's demand (a later year's).
    ``median_job_h`` / ``sigma`` / ``max_job_h``: log-normal run times of project jobs;
    ``consortium_job_h``: a consortium's training run. ``size_weights``: the share of a project's jobs
    asking 1, 2, 4, 8 GPUs and more (whole servers, up to the award); ``inference_share``: jobs of the
    inference class (the rest train; matters on a cluster with a speed table)."""

    award_use: float = Field(default=0.7, gt=0, le=2)
    unfunded_use: float = Field(default=0.25, ge=0, le=2)
    consortium_use: float = Field(default=0.9, ge=0, le=2)
    growth: float = Field(default=1.0, gt=0, le=100)
    median_job_h: float = Field(default=8.0, gt=0, allow_inf_nan=False)
    sigma: float = Field(default=1.0, ge=0, le=4)
    max_job_h: float = Field(default=48.0, gt=0, allow_inf_nan=False)
    consortium_job_h: float = Field(default=24.0, gt=0, allow_inf_nan=False)
    size_weights: list[float] = Field(default=[0.2, 0.1, 0.15, 0.35, 0.2], min_length=5, max_length=5)
    inference_share: float = Field(default=0.2, ge=0, le=1)


class PlanScenarioSpec(_Strict):
    name: str = Field(min_length=1)
    cluster: str = Field(min_length=1)
    servers: int | None = Field(default=None, ge=1)
    npu_share: float | None = Field(default=None, ge=0, lt=1)
    site_caps: bool = False
    period_days: float = Field(default=30.0, gt=0, le=366)
    seed: int = 42
    policies: list[str] = Field(default=["static", "commons", "fairshare"], min_length=1)
    funded: list[ProjectsSpec] = Field(default=[])
    unfunded: list[ProjectsSpec] = Field(default=[])
    consortia: ConsortiaSpec = ConsortiaSpec()
    demand: DemandSpec = DemandSpec()
    groups: dict[str, list[str]] = Field(default={})
    capex_krw_per_gpu: dict[str, int] = Field(default={})


DEFAULT_GROUPS = {
    "academia": ("university",),
    "industry": ("sme", "startup", "enterprise"),
    "research": ("research_institute",),
}


class PlanScenario:
    """A validated scenario: the spec, where it came from, its text (the cache key) and its cluster
    reference resolved against the file's folder."""

    def __init__(self, spec: PlanScenarioSpec, source: str, text: str, cluster_ref: str) -> None:
        self.spec = spec
        self.source = source
        self.text = text
        self.cluster_ref = cluster_ref

    @property
    def name(self) -> str:
        return self.spec.name

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Target group names: each kind alone, the default groups, then the file's own."""
        out: dict[str, tuple[str, ...]] = {kind: (kind,) for kind in INSTITUTION_KINDS}
        out.update(DEFAULT_GROUPS)
        out.update({name: tuple(kinds) for name, kinds in self.spec.groups.items()})
        return out


def scenario_names() -> list[str]:
    folder = resources.files("gpucommons.presets").joinpath(SCENARIO_FOLDER)
    return sorted(e.name.removesuffix(".toml") for e in folder.iterdir() if e.name.endswith(".toml"))


def load_plan_scenario(name_or_path: str) -> PlanScenario:
    """A shipped planning scenario by name, or a scenario file by path."""
    if name_or_path in scenario_names():
        entry = resources.files("gpucommons.presets").joinpath(SCENARIO_FOLDER, f"{name_or_path}.toml")
        return parse_plan_scenario(entry.read_text(), Path(str(entry)))
    path = Path(name_or_path)
    if path.suffix != ".toml" and not path.exists():
        raise UnknownNameError(
            f"unknown scenario {name_or_path!r}; shipped: {', '.join(scenario_names())}, "
            "or give the path of a scenario .toml file"
        )
    return parse_plan_scenario(read_text(path, "scenario file"), path)


def parse_plan_scenario(text: str, path: Path) -> PlanScenario:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        spec = PlanScenarioSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{path}: {where}: {message}" if where else f"{path}: {message}") from None
    for name, kinds in spec.groups.items():
        unknown = [k for k in kinds if k not in INSTITUTION_KINDS]
        if unknown:
            raise ConfigError(f"{path}: groups.{name}: unknown kind(s) {', '.join(unknown)}")
    for policy in spec.policies:
        check_policy(policy, f"{path}: policies")
    is_path = "/" in spec.cluster or spec.cluster.endswith(".toml")
    cluster_ref = str(path.parent / spec.cluster) if is_path else spec.cluster
    return PlanScenario(spec, str(path), text, cluster_ref)
