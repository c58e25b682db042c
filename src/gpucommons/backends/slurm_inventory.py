"""Import a Slurm cluster's inventory as a gpucommons cluster description.

Slurm lists a node once per partition; nodes are merged by name, then nodes with the same GPU model,
GPU count, CPUs and memory form one pool. gpucommons names nodes ``<pool>-<n>`` (``Cluster.build``), so
the import also returns the mapping from those names to Slurm's and the partition that holds each pool:
together they are the settings ``make_slurm_backend`` needs to run jobs on exactly the imported nodes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gpucommons.backends.slurm_cli import SlurmCli
from gpucommons.backends.slurm_parse import SINFO_FORMAT, SlurmNode, parse_gpu_gres, parse_sinfo_nodes
from gpucommons.backends.slurm_submit import SlurmConfig
from gpucommons.clusterfile import ClusterSpec, PoolSpec, SiteSpec
from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster
from gpucommons.errors import ConfigError


@dataclass(frozen=True)
class SlurmInventory:
    """An imported cluster plus what the Slurm backend needs to address it."""

    spec: ClusterSpec
    node_names: dict[str, str]  # gpucommons node -> Slurm node
    partitions: dict[str, str]  # pool -> Slurm partition
    skipped: tuple[str, ...]  # Slurm nodes without GPUs (not pooled)

    def backend_settings(self) -> dict[str, Any]:
        """``make_slurm_backend`` settings; identical node names are left out (the default)."""
        renamed = {k: v for k, v in self.node_names.items() if k != v}
        return {"partitions": dict(self.partitions), "node_names": renamed}


def _natural_key(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def catalog_model(gres_type: str | None, model_map: Mapping[str, str]) -> str:
    """The catalog model for a GRES type: an explicit mapping first, then the catalog by name, then a
    token of the type (``nvidia_h100_80gb_hbm3`` -> H100)."""
    key = gres_type or "gpu"
    if key in model_map:
        return model_map[key]
    by_lower = {name.lower(): name for name in CATALOG}
    if gres_type is not None:
        for token in [gres_type.lower(), *re.split(r"[_\-]", gres_type.lower())]:
            if token in by_lower:
                return by_lower[token]
    shown = gres_type if gres_type is not None else "untyped gpu"
    raise ConfigError(
        f"GPU type {shown!r} is not in the catalog; map it with --model {key}=MODEL "
        f"(known: {', '.join(CATALOG)})"
    )


def _pool_name(model: str, taken: set[str]) -> str:
    base = model.lower()
    for i in range(26):
        name = base if i == 0 else f"{base}{chr(ord('a') + i)}"  # h100, h100b, h100c...
        if name not in taken:
            return name
    raise ConfigError(f"too many distinct {model} node shapes to name pools")


def _partition(members: Sequence[SlurmNode], all_nodes: Sequence[SlurmNode]) -> str | None:
    """The smallest partition holding every node of the pool (ties by name), if any."""
    common = set(members[0].partitions).intersection(*(m.partitions for m in members))
    if not common:
        return None
    size = {p: sum(p in n.partitions for n in all_nodes) for p in common}
    return min(common, key=lambda p: (size[p], p))


def inventory_from_nodes(
    nodes: Sequence[SlurmNode], name: str = "slurm", site: str = "slurm", model_map: Mapping[str, str] = {}
) -> SlurmInventory:
    """Group parsed ``sinfo`` nodes into pools (pure: testable on captured text)."""
    groups: dict[tuple[str, int, int, int], list[SlurmNode]] = {}
    skipped = []
    for node in sorted(nodes, key=lambda n: _natural_key(n.name)):
        gres_type, gpus = parse_gpu_gres(node.gres)
        if gpus == 0:
            skipped.append(node.name)
            continue
        model = catalog_model(gres_type, model_map)
        memory_gib = max(1, node.memory_mb // 1024)
        groups.setdefault((model, gpus, max(1, node.cpus), memory_gib), []).append(node)
    if not groups:
        raise ConfigError("Slurm reports no nodes with GPUs (GRES gpu:TYPE:N); nothing to import")
    pools, node_names, partitions, taken = [], {}, {}, set[str]()
    for (model, gpus, cpus, memory_gib), members in groups.items():
        pool = _pool_name(model, taken)
        taken.add(pool)
        pools.append(
            PoolSpec(
                name=pool,
                site=site,
                model=model,
                nodes=len(members),
                gpus_per_node=gpus,
                cpus_per_node=cpus,
                memory_gib_per_node=memory_gib,
            )
        )
        node_names.update({f"{pool}-{i + 1}": m.name for i, m in enumerate(members)})
        if (partition := _partition(members, nodes)) is not None:
            partitions[pool] = partition
    spec = ClusterSpec(name=name, sites=(SiteSpec(name=site),), pools=tuple(pools))
    return SlurmInventory(spec, node_names, partitions, tuple(skipped))


def import_slurm_inventory(
    cli: SlurmCli | None = None, name: str = "slurm", site: str = "slurm", model_map: Mapping[str, str] = {}
) -> SlurmInventory:
    """Read ``sinfo -N`` from the cluster the Slurm client points at and group it into pools."""
    out = (cli or SlurmCli()).run(["sinfo", "-N", "-h", "-o", SINFO_FORMAT])
    return inventory_from_nodes(parse_sinfo_nodes(out), name, site, model_map)


def _q(text: str) -> str:
    return str(json.dumps(text))  # a JSON string is a valid TOML basic string


def cluster_toml(spec: ClusterSpec, source: str = "Slurm") -> str:
    """The cluster description in the format of ``clusterfile`` (site defaults left for the user)."""
    lines = [f"# Imported from {source} by gpuc site import-slurm.", f"name = {_q(spec.name)}", ""]
    for s in spec.sites:
        lines += ["[[sites]]", f"name = {_q(s.name)}", f"region = {_q(s.region)}", ""]
    for p in spec.pools:
        lines += [
            "[[pools]]",
            f"name = {_q(p.name)}",
            f"site = {_q(p.site)}",
            f"model = {_q(p.model)}",
            f"nodes = {p.nodes}",
            f"gpus_per_node = {p.gpus_per_node}",
            f"cpus_per_node = {p.cpus_per_node}",
            f"memory_gib_per_node = {p.memory_gib_per_node}",
            "",
        ]
    return "\n".join(lines)


def backend_toml(inventory: SlurmInventory) -> str:
    """``make_slurm_backend`` settings for the imported cluster, as TOML."""
    settings = inventory.backend_settings()
    lines = ["# Slurm backend settings (keys of SlurmConfig) for the imported cluster.", "[partitions]"]
    lines += [f"{_q(k)} = {_q(v)}" for k, v in settings["partitions"].items()]
    lines += ["", "[node_names]  # gpucommons node -> Slurm node"]
    lines += [f"{_q(k)} = {_q(v)}" for k, v in settings["node_names"].items()]
    return "\n".join(lines) + "\n"


def check_cluster_on_slurm(cluster: Cluster, nodes: Sequence[SlurmNode], config: SlurmConfig) -> None:
    """Refuse a cluster description that names what Slurm does not have, before anything is scheduled
    on it: every node of every pool must be a Slurm node (under the name ``config.node_names`` gives it)
    holding at least the pool's GPUs per node, of the GRES type jobs will ask for, in the partition the
    pool is sent to. Otherwise its jobs would be placed by gpucommons and then never start in Slurm."""
    by_name = {n.name: n for n in nodes}
    for pool in cluster.pools:
        members = [n.name for n in cluster.nodes if n.pool == pool.name]
        missing = [config.slurm_node(m) for m in members if config.slurm_node(m) not in by_name]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ConfigError(
                f"pool {pool.name!r} of cluster {cluster.name!r} is not in Slurm: "
                f"no node {missing[0]!r}{more} (see gpuc site import-slurm)"
            )
        want_type = config.gres_types.get(pool.model.name, pool.model.name.lower()).lower()
        for member in members:
            node = by_name[config.slurm_node(member)]
            gres_type, gpus = parse_gpu_gres(node.gres)
            where = f"pool {pool.name!r} of cluster {cluster.name!r}: Slurm node {node.name!r}"
            if gpus < pool.gpus_per_node:
                raise ConfigError(f"{where} has {gpus} GPUs, the cluster file says {pool.gpus_per_node}")
            if gres_type is not None and gres_type != want_type:
                raise ConfigError(f"{where} has GPUs of type {gres_type!r}, not {want_type!r}")
            partition = config.partition_for(member)
            if partition is not None and partition not in node.partitions:
                raise ConfigError(f"{where} is not in partition {partition!r}")


def verify_cluster_on_slurm(cluster: Cluster, config: SlurmConfig, cli: SlurmCli) -> None:
    """``check_cluster_on_slurm`` against what ``sinfo`` reports now."""
    out = cli.run(["sinfo", "-N", "-h", "-o", SINFO_FORMAT])
    check_cluster_on_slurm(cluster, parse_sinfo_nodes(out), config)
