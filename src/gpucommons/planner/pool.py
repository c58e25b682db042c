"""The pool a plan runs on: the scenario's cluster with its pools scaled to a number of servers, and
what that many servers cost in power, won and CO2.

Scaling keeps each pool's share of the cluster's servers (largest remainder, so the counts add up to
the size asked for); with ``npu_share`` the NPU pools together take that share and the GPU pools the
rest, each side in its own proportions. Site caps are dropped unless the scenario keeps them: a size
search must not be capped by yesterday's grid connection.

Power: a server's IT draw at full load is the simulator's power model (``domain/power.py``: busy devices
at ``device_utilization`` x TDP plus the node's base draw); facility MW is IT x the site's PUE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.cluster import Cluster, Pool
from gpucommons.domain.power import WATTS_PER_MW, PowerModel
from gpucommons.errors import ConfigError
from gpucommons.planner.scenario import PlanScenario

HOURS_PER_YEAR = 8760.0
GRAMS_PER_TONNE = 1e6


def base_cluster(scenario: PlanScenario) -> Cluster:
    return load_cluster(scenario.cluster_ref)


def default_servers(scenario: PlanScenario) -> int:
    if scenario.spec.servers is not None:
        return scenario.spec.servers
    return sum(p.node_count for p in base_cluster(scenario).pools)


def _split(total: int, weights: list[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainder, ties to the earlier)."""
    whole = sum(weights)
    if whole <= 0:
        return [0] * len(weights)
    exact = [total * w / whole for w in weights]
    counts = [int(e) for e in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def scaled_cluster(scenario: PlanScenario, servers: int) -> Cluster:
    """The scenario's cluster with ``servers`` servers in all."""
    base = base_cluster(scenario)
    pools = list(base.pools)
    share = scenario.spec.npu_share
    if share is None:
        counts = _split(servers, [float(p.node_count) for p in pools])
    else:
        npu = [i for i, p in enumerate(pools) if p.model.kind == "npu"]
        gpu = [i for i, p in enumerate(pools) if p.model.kind != "npu"]
        if not npu or not gpu:
            raise ConfigError(f"{scenario.source}: npu_share needs both NPU and GPU pools in the cluster")
        npu_servers = round(servers * share)
        counts = [0] * len(pools)
        for side, total in ((npu, npu_servers), (gpu, servers - npu_servers)):
            for i, n in zip(side, _split(total, [float(pools[i].node_count) for i in side]), strict=True):
                counts[i] = n
    kept = tuple(replace(p, node_count=n) for p, n in zip(pools, counts, strict=True) if n > 0)
    sites = base.sites
    if not scenario.spec.site_caps:
        sites = tuple(replace(s, power_cap_mw=None, cap_windows=()) for s in sites)
    return Cluster.build(f"{base.name}-{servers}", sites, kept, base.speeds)


def server_it_w(pool: Pool, model: PowerModel) -> float:
    tdp = pool.model.tdp_w
    return pool.gpus_per_node * model.device_w(tdp) + model.node_base_w(
        tdp, pool.gpus_per_node, pool.node_base_w
    )


@dataclass(frozen=True)
class PoolCost:
    gpus: int
    gpus_by_model: dict[str, int]
    it_mw: float
    facility_mw: float
    capex_krw: int
    capex_unpriced_models: tuple[str, ...]


def pool_cost(cluster: Cluster, prices_krw_per_gpu: Mapping[str, int], model: PowerModel) -> PoolCost:
    """GPUs, full-load IT and facility MW, and capex (models without a price are named, not guessed)."""
    by_model: dict[str, int] = {}
    it_w = facility_w = 0.0
    sites = cluster.site_by_name
    for pool in cluster.pools:
        by_model[pool.model.name] = by_model.get(pool.model.name, 0) + pool.gpus
        pool_w = pool.node_count * server_it_w(pool, model)
        it_w += pool_w
        facility_w += pool_w * sites[pool.site].pue
    unpriced = tuple(sorted(m for m in by_model if m not in prices_krw_per_gpu))
    capex = sum(n * prices_krw_per_gpu.get(m, 0) for m, n in by_model.items())
    return PoolCost(
        cluster.total_gpus,
        dict(sorted(by_model.items())),
        it_w / WATTS_PER_MW,
        facility_w / WATTS_PER_MW,
        capex,
        unpriced,
    )
