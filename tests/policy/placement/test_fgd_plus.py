"""FGD+ scoring: the fill test and the CPU/memory balance term on hand-checked node states."""

from __future__ import annotations

import pytest

from gpucommons.policy.capacity import Capacity
from gpucommons.policy.placement.fgd_plus import FgdPlusPlacer
from tests.policy.placement.builders import make_cluster, make_job


def _mix_placer(capacity: Capacity) -> FgdPlusPlacer:
    """Half whole GPUs with 8 cores, half 0.8-GPU shares with 2 cores: 900 milli per 5,000 CPU milli."""
    placer = FgdPlusPlacer()
    placer.observe_workload([make_job(1, gpus=1, cpu_milli=8000), make_job(2, gpu_milli=800, cpu_milli=2000)])
    placer.bind(capacity)
    return placer


def test_gpu_per_host_is_the_mix_average() -> None:
    capacity = Capacity(make_cluster(("a", "A100", 1, 4)))
    placer = _mix_placer(capacity)
    per_cpu, per_mem = placer.gpu_per_host(0)
    assert per_cpu == pytest.approx(900 / 5000)
    assert per_mem == float("inf")  # no memory requests in the mix: memory never strands


def test_stranded_counts_gpus_the_free_cpu_cannot_feed() -> None:
    capacity = Capacity(make_cluster(("a", "A100", 1, 4)))
    placer = _mix_placer(capacity)
    assert placer.stranded(capacity.state_key(0)) == 0.0  # 32 cores feed 5,760 milli > 4,000 free
    capacity.allocate(0, 0, cpu_milli=24_000)  # a CPU-only pod leaves 8 cores
    assert placer.stranded(capacity.state_key(0)) == pytest.approx(4000 - 8000 * 900 / 5000)
    capacity.allocate(0, 4)
    assert placer.stranded(capacity.state_key(0)) == 0.0  # no free GPU, nothing to strand


def test_memory_strands_like_cpu() -> None:
    capacity = Capacity(make_cluster(("a", "A100", 1, 4)))
    placer = FgdPlusPlacer()
    placer.observe_workload([make_job(1, gpus=1, memory_mib=64 * 1024)])
    placer.bind(capacity)
    capacity.allocate(0, 0, memory_mib=128 * 1024)  # 128 GiB left: food for 2 of 4 free GPUs
    assert placer.stranded(capacity.state_key(0)) == pytest.approx(2000)


def test_balance_sends_cpu_light_pods_to_cpu_poor_nodes_and_cpu_heavy_ones_away() -> None:
    capacity = Capacity(make_cluster(("a", "A100", 2, 4)))
    capacity.allocate(0, 0, cpu_milli=24_000)  # node 0: 4 free GPUs, 8 cores; node 1: 4 GPUs, 32 cores
    placer = _mix_placer(capacity)
    heavy = placer.place(make_job(3, gpus=1, cpu_milli=8000), capacity)
    assert heavy is not None and heavy.node_gpus[0][0] == 1
    light = placer.place(make_job(4, gpu_milli=800, cpu_milli=2000), capacity)
    assert light is not None and light.node_gpus[0][0] == 0


def test_cpu_only_pods_go_where_no_gpu_is_left_to_strand() -> None:
    capacity = Capacity(make_cluster(("a", "A100", 2, 2)))
    capacity.allocate(1, 2, cpu_milli=8000)  # node 1: both GPUs taken, 24 cores left
    placer = _mix_placer(capacity)
    placement = placer.place(make_job(5, gpus=0, cpu_milli=16_000), capacity)
    assert placement is not None and placement.node_gpus[0][0] == 1


def test_balance_memo_follows_the_mix() -> None:
    capacity = Capacity(make_cluster(("a", "A100", 1, 4)))
    placer = _mix_placer(capacity)
    before = placer.gpu_per_host(0)[0]
    placer.observe_workload([make_job(1, gpus=1, cpu_milli=1000)])
    assert placer.gpu_per_host(0)[0] == pytest.approx(1.0) != before
    placer.bind(Capacity(make_cluster(("b", "A100", 1, 4))))
    assert placer.gpu_per_host(0)[0] == pytest.approx(1.0)


def test_fill_test_charges_gpus_one_shape_cannot_use() -> None:
    capacity = Capacity(make_cluster(("a", "A100", 1, 4)))
    placer = FgdPlusPlacer()
    placer.observe_workload([make_job(1, gpus=1, cpu_milli=16_000)])
    placer.bind(capacity)
    assert placer.fill_waste(capacity.state_key(0)) == 2000  # 32 cores: 2 of 4 GPUs usable
    capacity.allocate_share(0, 0, 300)
    assert placer.fill_waste(capacity.state_key(0)) == 3700 - 2000
