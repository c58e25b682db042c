"""Cluster descriptions: a small TOML format, validated with pydantic, plus built-in presets.

Format (every key but ``name``, ``sites`` and ``pools`` is optional)::

    name = "demo"
    [[models]]            # extra accelerator models beyond the built-in catalog
    name = "X1"; vendor = "acme"; memory_gb = 64; bf16_tflops = 500; tdp_w = 500; relative_speed = 1.2
    [[sites]]
    name = "daejeon"; region = "non-capital"; sovereign = true; power_cap_mw = 2.0; pue = 1.3
    [[pools]]
    name = "h100"; site = "daejeon"; model = "H100"; nodes = 4; gpus_per_node = 8
    topology = { nvlink_domain_nodes = 1, block_nodes = 2 }

Errors name the file and the offending field in one line.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gpucommons.domain.accelerators import CATALOG, AcceleratorModel
from gpucommons.domain.cluster import Cluster, Pool, Site, Topology
from gpucommons.errors import ConfigError, UnknownNameError

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


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


class SiteSpec(_Strict):
    name: str
    region: str = "capital"
    sovereign: bool = True
    power_cap_mw: float | None = Field(default=None, gt=0)
    pue: float = Field(default=1.3, ge=1.0)
    price_krw_per_kwh: float = Field(default=182.7, ge=0)
    carbon_g_per_kwh: float = Field(default=417.3, ge=0)


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


class ClusterSpec(_Strict):
    name: str
    models: tuple[ModelSpec, ...] = ()
    sites: tuple[SiteSpec, ...] = Field(min_length=1)
    pools: tuple[PoolSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> ClusterSpec:
        site_names = {s.name for s in self.sites}
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
        return self

    def to_cluster(self) -> Cluster:
        models = dict(CATALOG)
        for m in self.models:
            models[m.name] = AcceleratorModel(**m.model_dump())
        sites = tuple(Site(**s.model_dump()) for s in self.sites)
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
            )
            for p in self.pools
        )
        return Cluster.build(self.name, sites, pools)


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


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


def preset_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".toml")
        for p in resources.files("gpucommons.presets").iterdir()
        if p.name.endswith(".toml")
    )


def load_cluster(name_or_path: str) -> Cluster:
    """A built-in preset by name, or a TOML file by path."""
    if name_or_path in preset_names():
        text = resources.files("gpucommons.presets").joinpath(f"{name_or_path}.toml").read_text()
        return parse_cluster(text, f"preset {name_or_path}")
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read cluster file {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
        return parse_cluster(text, str(path))
    raise UnknownNameError(f"unknown cluster {name_or_path!r}; presets: {', '.join(preset_names())}")
