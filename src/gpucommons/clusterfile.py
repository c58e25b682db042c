"""Cluster descriptions: a small TOML format, validated with pydantic, plus built-in presets.

Format (every key but ``name``, ``sites`` and ``pools`` is optional)::

    name = "demo"
    [[models]]            # extra accelerator models beyond the built-in catalog
    name = "X1"; vendor = "acme"; memory_gb = 64; bf16_tflops = 500; tdp_w = 500; relative_speed = 1.2
    [[sites]]
    name = "daejeon"; region = "non-capital"; sovereign = true; power_cap_mw = 2.0; pue = 1.3
    utc_offset_h = 9      # the site's clock, for its cap windows (-12..14)
    cap_windows = [       # the cap at set hours of the local week (grid demand response)
      { days = "mon-fri", start = "14:00", end = "18:00", cap_mw = 1.5 },
      { days = ["sat", "sun"], start = "00:00", end = "24:00", cap_mw = 2.5 },
    ]
    [[pools]]
    name = "h100"; site = "daejeon"; model = "H100"; nodes = 4; gpus_per_node = 8
    node_base_w = 2800    # a busy node's draw beside its devices (default: the power model's)
    topology = { nvlink_domain_nodes = 1, block_nodes = 2 }
    [speeds]              # the work model (design note 0009); absent: every model runs a job alike
    reference = "H100"    # work and reference GPU-hours in H100-equivalents (default: A100)
    [speeds.inference]    # a class's speed per model, relative to the reference (else the shipped table)
    RNGD = 0.38

A window's ``days`` is a range (``"mon-fri"``; ``"fri-mon"`` wraps over the weekend), a list of days, one
day, or ``"daily"``; ``start`` and ``end`` are local ``HH:MM`` with ``end`` after ``start`` (``"24:00"``
is midnight at the end of the day; a window across midnight is two windows). Outside every window the
cap is ``power_cap_mw`` (absent: uncapped). Windows of one site must not overlap, so the cap at any
instant is unambiguous (``domain/power.py``).

Errors name the file and the offending field in one line. Preset files that describe no sites (run
scenarios, ``sim/scenariofile.py``) live beside the cluster presets but are not listed as clusters.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from gpucommons.domain.accelerators import CATALOG, AcceleratorModel
from gpucommons.domain.cluster import Cluster, Pool, Site, Topology
from gpucommons.domain.power import CapWindow, windows_overlap
from gpucommons.domain.speeds import DEFAULT_CLASS, SpeedTable
from gpucommons.errors import ConfigError, InvalidRequestError, UnknownNameError
from gpucommons.textfile import read_text

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
MINUTES_PER_DAY = 24 * 60
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = CapWindow day (0 = Monday)
_HHMM = re.compile(r"(\d{2}):(\d{2})")


def _day(name: str) -> int:
    try:
        return DAY_NAMES.index(name.strip().lower())
    except ValueError:
        raise ValueError(f"unknown day {name!r}; days are {', '.join(DAY_NAMES)}") from None


def parse_days(value: Any) -> frozenset[int]:
    """``"daily"``, one day, a range ``"mon-fri"`` (``"fri-mon"`` wraps), or a list of those."""
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("days must name at least one day")
        return frozenset().union(*(parse_days(v) for v in value))
    if not isinstance(value, str):
        raise ValueError('days must be "daily", a day, a range like "mon-fri" or a list like ["sat", "sun"]')
    text = value.strip().lower()
    if text == "daily":
        return frozenset(range(7))
    if "-" in text:
        first, _, last = text.partition("-")
        a, b = _day(first), _day(last)
        return frozenset((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset({_day(text)})


def parse_hhmm(value: Any) -> int:
    """Minutes after local midnight of an ``HH:MM`` time, ``00:00`` to ``24:00``."""
    match = _HHMM.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"time must be HH:MM (e.g. 14:00), got {value!r}")
    hours, minutes = int(match[1]), int(match[2])
    if minutes >= 60 or hours * 60 + minutes > MINUTES_PER_DAY:
        raise ValueError(f"time must be between 00:00 and 24:00, got {value!r}")
    return hours * 60 + minutes


def format_window(window: CapWindow) -> str:
    """How a window reads in error messages: ``mon-fri 14:00-18:00``, ``sat,sun 00:00-24:00``."""
    runs: list[list[int]] = []
    for d in sorted(window.days):
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    parts = [
        ",".join(DAY_NAMES[d] for d in r) if len(r) < 3 else f"{DAY_NAMES[r[0]]}-{DAY_NAMES[r[-1]]}"
        for r in runs
    ]
    days = "daily" if len(window.days) == 7 else ",".join(parts)
    start, end = divmod(window.start_min, 60), divmod(window.end_min, 60)
    return f"{days} {start[0]:02d}:{start[1]:02d}-{end[0]:02d}:{end[1]:02d}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    name: str
    vendor: str = "unknown"
    memory_gb: float = Field(gt=0)
    bf16_tflops: float = Field(gt=0)
    tdp_w: float = Field(gt=0)
    relative_speed: float = Field(gt=0)
    kind: str = "gpu"
    partitions: tuple[PositiveInt, ...] = ()


class CapWindowSpec(_Strict):
    days: Annotated[frozenset[int], BeforeValidator(parse_days)]
    start: Annotated[int, BeforeValidator(parse_hhmm)]
    end: Annotated[int, BeforeValidator(parse_hhmm)]
    cap_mw: float = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _end_after_start(self) -> CapWindowSpec:
        if self.end <= self.start:
            raise ValueError("end must be after start (a window across midnight is two windows)")
        return self

    def to_window(self) -> CapWindow:
        return CapWindow(days=self.days, start_min=self.start, end_min=self.end, cap_mw=self.cap_mw)


class SiteSpec(_Strict):
    name: str
    region: str = "capital"
    sovereign: bool = True
    power_cap_mw: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    pue: float = Field(default=1.3, ge=1.0)
    price_krw_per_kwh: float = Field(default=182.7, ge=0)
    carbon_g_per_kwh: float = Field(default=417.3, ge=0)
    utc_offset_h: float = Field(default=0.0, ge=-12, le=14)
    cap_windows: tuple[CapWindowSpec, ...] = ()

    @model_validator(mode="after")
    def _windows_disjoint(self) -> SiteSpec:
        clash = windows_overlap(tuple(w.to_window() for w in self.cap_windows))
        if clash is not None:
            first, second = (format_window(w) for w in clash)
            raise ValueError(f"site {self.name!r}: cap windows {first} and {second} overlap")
        return self

    def to_site(self) -> Site:
        return Site(
            name=self.name,
            region=self.region,
            sovereign=self.sovereign,
            power_cap_mw=self.power_cap_mw,
            pue=self.pue,
            price_krw_per_kwh=self.price_krw_per_kwh,
            carbon_g_per_kwh=self.carbon_g_per_kwh,
            cap_windows=tuple(w.to_window() for w in self.cap_windows),
            utc_offset_h=self.utc_offset_h,
        )


class TopologySpec(_Strict):
    nvlink_domain_nodes: PositiveInt = 1
    block_nodes: NonNegativeInt = 0


class PoolSpec(_Strict):
    name: str
    site: str
    model: str
    nodes: NonNegativeInt
    gpus_per_node: PositiveInt
    cpus_per_node: PositiveInt = 64
    memory_gib_per_node: PositiveInt = 1024
    topology: TopologySpec = TopologySpec()
    node_base_w: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class SpeedsSpec(_Strict):
    """``[speeds]``: the work model (design note 0009). Each class table gives that class's speed on
    each model relative to ``reference``; what it leaves out comes from the shipped table."""

    reference: str = "A100"
    default_class: str = DEFAULT_CLASS
    llm_pretrain: dict[str, float] = Field(default_factory=dict, alias="llm-pretrain")
    llm_finetune: dict[str, float] = Field(default_factory=dict, alias="llm-finetune")
    vision: dict[str, float] = Field(default_factory=dict)
    inference: dict[str, float] = Field(default_factory=dict)

    def to_table(self, relative_speeds: dict[str, float]) -> SpeedTable:
        overrides = {
            "llm-pretrain": self.llm_pretrain,
            "llm-finetune": self.llm_finetune,
            "vision": self.vision,
            "inference": self.inference,
        }
        return SpeedTable(
            self.reference, self.default_class, {c: v for c, v in overrides.items() if v}, relative_speeds
        )


class ClusterSpec(_Strict):
    name: str
    models: tuple[ModelSpec, ...] = ()
    sites: tuple[SiteSpec, ...] = Field(min_length=1)
    pools: tuple[PoolSpec, ...] = Field(min_length=1)
    speeds: SpeedsSpec | None = None

    @model_validator(mode="after")
    def _references(self) -> ClusterSpec:
        site_names: set[str] = set()
        for site in self.sites:
            if site.name in site_names:
                raise ValueError(f"site name {site.name!r} is used twice")
            site_names.add(site.name)
        model_names = set(CATALOG) | {m.name for m in self.models}
        seen: set[str] = set()
        for pool in self.pools:
            if pool.site not in site_names:
                raise ValueError(f"pool {pool.name!r} names unknown site {pool.site!r}")
            if pool.model not in model_names:
                raise ValueError(f"pool {pool.name!r} names unknown model {pool.model!r}")
            if pool.name in seen:
                raise ValueError(f"pool name {pool.name!r} is used twice")
            seen.add(pool.name)
        if self.speeds is not None:
            try:
                self.speeds.to_table({**_catalog_speeds(), **{m.name: m.relative_speed for m in self.models}})
            except InvalidRequestError as exc:
                raise ValueError(str(exc)) from None
        return self

    def to_cluster(self) -> Cluster:
        models = dict(CATALOG)
        for m in self.models:
            models[m.name] = AcceleratorModel(**m.model_dump())
        sites = tuple(s.to_site() for s in self.sites)
        pools = tuple(
            Pool(
                name=p.name,
                site=p.site,
                model=models[p.model],
                node_count=p.nodes,
                gpus_per_node=p.gpus_per_node,
                cpus_per_node=p.cpus_per_node,
                memory_gib_per_node=p.memory_gib_per_node,
                topology=Topology(**p.topology.model_dump()),
                node_base_w=p.node_base_w,
            )
            for p in self.pools
        )
        speeds = None
        if self.speeds is not None:
            speeds = self.speeds.to_table({name: m.relative_speed for name, m in models.items()})
        return Cluster.build(self.name, sites, pools, speeds)


def _catalog_speeds() -> dict[str, float]:
    return {name: m.relative_speed for name, m in CATALOG.items()}


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def parse_cluster(text: str, source: str) -> Cluster:
    """Parse and validate a TOML cluster description; ``source`` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        return ClusterSpec.model_validate(raw).to_cluster()
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}") from None


@lru_cache(maxsize=1)
def preset_index() -> dict[str, bool]:
    """Each shipped TOML preset's name and whether it is a cluster (it describes sites; a scenario
    does not). Read once per process: the package's files do not change while it runs."""
    index = {}
    for entry in resources.files("gpucommons.presets").iterdir():
        if entry.name.endswith(".toml"):
            index[entry.name.removesuffix(".toml")] = "sites" in tomllib.loads(entry.read_text())
    return index


def preset_names() -> list[str]:
    """The cluster presets: the shipped TOML files that describe sites (scenario files do not)."""
    return sorted(name for name, is_cluster in preset_index().items() if is_cluster)


def load_cluster(name_or_path: str) -> Cluster:
    """A built-in preset by name, or a TOML file by path."""
    if name_or_path in preset_names():
        text = resources.files("gpucommons.presets").joinpath(f"{name_or_path}.toml").read_text()
        return parse_cluster(text, f"preset {name_or_path}")
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        text = read_text(path, "cluster file")
        return parse_cluster(text, str(path))
    raise UnknownNameError(f"unknown cluster {name_or_path!r}; presets: {', '.join(preset_names())}")
