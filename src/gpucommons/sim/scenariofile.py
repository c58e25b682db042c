"""A scenario file: one run's inputs in one place, so a commons experiment is a file, not a command line.

Format (TOML; every key is optional, an unknown key is an error)::

    cluster = "philly"             # a preset name, or a cluster TOML path
    tenants = "philly-tenants.csv" # a tenants CSV (sim/tenants.py)
    trace = "philly"               # philly, synthetic, openb, or a Philly-format CSV path
    load = 1.0                     # multiply the arrival rate
    policy = "fairshare"
    placement = "best-fit"
    borrowing = true               # false: each award is a static partition
    power_cap_mw = 1.0             # the same cap on every site, in place of the cluster's
    power_preempt = false          # a falling cap preempts the newest preemptible jobs
    siting = false                 # try the sites a job may use best first (policy/constraints/siting.py)
    unlisted = "error"             # or "best-effort": trace tenants missing from the tenants file
    checkpoint_aware = false       # victims that lose the least work first (design note 0016)
    [power_model]
    device_utilization = 0.8       # a busy device's share of its TDP
    node_base_fraction = 0.5       # a busy node's base draw, as a share of its devices' TDP
    [checkpoints]                  # trace jobs that declare a checkpoint interval (sim/reservations.py)
    interval_s = 1800
    fraction = 0.5                 # the share of them, drawn with the run's seed
    min_gpus = 1                   # only jobs of at least this many GPUs
    [[reservations]]               # whole nodes held for a tenant (design note 0016); as many as wanted
    id = 1                         # default: its place in the list, from 1
    tenant = "consortium"
    gpus = 512
    model = "P40"                  # default: any model
    start_h = 24                   # hours on the trace's clock (Philly's: from its first arrival)
    duration_h = 24
    every_h = 168                  # repeat (default: once), occurrences times (default: without end)
    occurrences = 4
    within = ""                    # or "nvlink", "block": all its nodes in one NVLink domain or block
    lend_idle = false              # lend idle reserved GPUs to short preemptible jobs of others
    job_gpus = 512                 # the tenant's gang, submitted at each start (default: none)
    job_duration_h = 20            # its run time (default: the whole window)

Paths are relative to the scenario file (a value is a path when it holds a ``/`` or ends in ``.toml`` or
``.csv``; otherwise a name). ``gpuc sim --scenario FILE`` reads it; any option given on the command line
wins over the file, and the file over the built-in defaults (``DEFAULTS``). Scenario presets ship
beside the cluster presets (``gpuc sim --scenario philly-commons``). Errors are one line naming the file
and the field.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpucommons.clusterfile import preset_index
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.power import DEVICE_UTILIZATION, NODE_BASE_FRACTION, PowerModel
from gpucommons.domain.reservation import Reservation
from gpucommons.errors import ConfigError, InvalidRequestError
from gpucommons.sim.reservations import CheckpointPlan, ReservationPlan
from gpucommons.sim.tenants import Unlisted
from gpucommons.textfile import read_text

PATH_SUFFIXES = (".toml", ".csv")


class _Strict(BaseModel):
    """TOML has real booleans and numbers, so nothing is coerced: ``borrowing = "off"`` is an error, not
    a silent ``True``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PowerModelSpec(_Strict):
    device_utilization: float = Field(default=DEVICE_UTILIZATION, gt=0, le=1)
    node_base_fraction: float = Field(default=NODE_BASE_FRACTION, ge=0, allow_inf_nan=False)


class CheckpointSpec(_Strict):
    interval_s: float = Field(gt=0, allow_inf_nan=False)
    fraction: float = Field(default=1.0, ge=0, le=1)
    min_gpus: int = Field(default=1, ge=0)


class ReservationSpec(_Strict):
    id: int | None = Field(default=None, ge=1)
    tenant: str = Field(min_length=1)
    gpus: int = Field(ge=1)
    model: str | None = Field(default=None, min_length=1)
    start_h: float = Field(ge=0, allow_inf_nan=False)
    duration_h: float = Field(gt=0, allow_inf_nan=False)
    every_h: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    occurrences: int | None = Field(default=None, ge=1)
    within: Literal["", "nvlink", "block"] = ""
    lend_idle: bool = False
    job_gpus: int | None = Field(default=None, ge=1)
    job_duration_h: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class ScenarioSpec(_Strict):
    cluster: str | None = Field(default=None, min_length=1)
    tenants: str | None = Field(default=None, min_length=1)
    trace: str | None = Field(default=None, min_length=1)
    load: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    policy: str | None = Field(default=None, min_length=1)
    placement: str | None = Field(default=None, min_length=1)
    borrowing: bool | None = None
    power_cap_mw: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    power_preempt: bool | None = None
    siting: bool | None = None
    unlisted: Unlisted | None = None
    power_model: PowerModelSpec | None = None
    checkpoint_aware: bool | None = None
    checkpoints: CheckpointSpec | None = None
    reservations: list[ReservationSpec] | None = None


@dataclass(frozen=True)
class Scenario:
    """What a run sets, field by field; ``None`` leaves a field to the next layer (``over``)."""

    cluster: str | None = None
    tenants: Path | None = None
    trace: str | None = None
    load: float | None = None
    policy: str | None = None
    placement: str | None = None
    borrowing: bool | None = None
    power_cap_mw: float | None = None
    power_preempt: bool | None = None
    siting: bool | None = None
    unlisted: Unlisted | None = None
    power_model: PowerModel | None = None
    checkpoint_aware: bool | None = None
    checkpoints: CheckpointPlan | None = None
    reservations: tuple[ReservationPlan, ...] | None = None

    def over(self, base: Scenario) -> Scenario:
        """This scenario's fields where set, ``base``'s elsewhere: ``cli.over(file).over(DEFAULTS)``."""
        mine = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(base, **mine)

    def resolve(self) -> RunInputs:
        """Every input of a run, with the built-in defaults under whatever is unset."""
        full = self.over(DEFAULTS)
        values = {f.name: getattr(full, f.name) for f in fields(RunInputs)}
        unset = [name for name in REQUIRED if values[name] is None]
        assert not unset, f"DEFAULTS leaves {unset} unset"
        return RunInputs(**values)


DEFAULTS = Scenario(
    cluster="philly",
    trace="philly",
    load=1.0,
    policy="fifo",
    placement="best-fit",
    borrowing=True,
    power_preempt=False,
    siting=False,
    unlisted="error",
    power_model=PowerModel(),
    checkpoint_aware=False,
    reservations=(),
)
"""What ``gpuc sim`` runs when neither the command line nor a scenario file says otherwise."""


@dataclass(frozen=True)
class RunInputs:
    """A run's inputs after the command line, the scenario file and the defaults are layered."""

    cluster: str
    tenants: Path | None
    trace: str
    load: float
    policy: str
    placement: str
    borrowing: bool
    power_cap_mw: float | None
    power_preempt: bool
    siting: bool
    unlisted: Unlisted
    power_model: PowerModel
    checkpoint_aware: bool
    checkpoints: CheckpointPlan | None
    reservations: tuple[ReservationPlan, ...]


OPTIONAL = frozenset({"tenants", "power_cap_mw", "checkpoints"})  # the run's inputs that may stay unset
REQUIRED = tuple(f.name for f in fields(RunInputs) if f.name not in OPTIONAL)


def is_path(value: str) -> bool:
    return "/" in value or value.endswith(PATH_SUFFIXES)


def scenario_preset_names() -> list[str]:
    """The shipped scenarios: preset TOML files that describe no sites (those are cluster presets)."""
    return sorted(name for name, is_cluster in preset_index().items() if not is_cluster)


def load_scenario(name_or_path: str) -> Scenario:
    """A shipped scenario by name, or a scenario TOML file by path."""
    if name_or_path in scenario_preset_names():
        path = Path(str(resources.files("gpucommons.presets").joinpath(f"{name_or_path}.toml")))
    else:
        path = Path(name_or_path)
    text = read_text(path, "scenario file")
    return parse_scenario(text, path)


def parse_scenario(text: str, path: Path) -> Scenario:
    """Parse and validate scenario TOML; relative paths in it are taken from ``path``'s folder."""
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        spec = ScenarioSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{path}: {where}: {message}" if where else f"{path}: {message}") from None
    base = path.parent

    def located(value: str | None) -> str | None:
        return str(base / value) if value is not None and is_path(value) else value

    given = {name: value for name, value in spec if value is not None}
    if "cluster" in given:
        given["cluster"] = located(spec.cluster)
    if "trace" in given:
        given["trace"] = located(spec.trace)
    if spec.tenants is not None:
        given["tenants"] = base / spec.tenants
    if spec.power_model is not None:
        given["power_model"] = PowerModel(
            spec.power_model.device_utilization, spec.power_model.node_base_fraction
        )
    if spec.checkpoints is not None:
        given["checkpoints"] = CheckpointPlan(**spec.checkpoints.model_dump())
    if spec.reservations is not None:
        given["reservations"] = tuple(_plan(i, r, path) for i, r in enumerate(spec.reservations, start=1))
    return Scenario(**given)


def _plan(position: int, spec: ReservationSpec, path: Path) -> ReservationPlan:
    """A ``[[reservations]]`` entry as a plan; hours become policy seconds after the first arrival."""
    hour_s = 3600.0
    try:
        reservation = Reservation(
            spec.id or position,
            spec.tenant,
            spec.gpus,
            spec.start_h * hour_s,
            (spec.start_h + spec.duration_h) * hour_s,
            model=spec.model,
            within=spec.within,
            lend_idle=spec.lend_idle,
            every_s=None if spec.every_h is None else spec.every_h * hour_s,
            occurrences=spec.occurrences,
        )
    except ValueError as exc:
        raise ConfigError(f"{path}: reservations.{position - 1}: {exc}") from None
    duration_s = None if spec.job_duration_h is None else spec.job_duration_h * hour_s
    return ReservationPlan(reservation, spec.job_gpus, duration_s)


def parse_on_off(value: str | None, option: str) -> bool | None:
    """``on``/``off`` of a command-line switch; ``None`` when not given."""
    if value is None:
        return None
    if value in ("on", "off"):
        return value == "on"
    raise InvalidRequestError(f"{option} must be on or off, got {value!r}")


def check_power_cap_mw(value: float | None, option: str = "--power-cap-mw") -> float | None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise InvalidRequestError(f"{option} must be a finite number > 0, got {value}")
    return value


def with_power_cap(cluster: Cluster, cap_mw: float) -> Cluster:
    """``cluster`` with ``cap_mw`` as every site's cap outside its cap windows, which still apply: the
    option asks "what if each site could draw this much", not "ignore demand response"."""
    sites = tuple(replace(site, power_cap_mw=cap_mw) for site in cluster.sites)
    return Cluster.build(cluster.name, sites, cluster.pools)
