"""Table-driven unit tests: every placer on small clusters, with the choice each one should make."""

from __future__ import annotations

import pytest

from gpucommons.policy.capacity import Capacity
from gpucommons.policy.placement.fgd import FgdPlacer
from gpucommons.policy.protocols import WorkloadAware
from gpucommons.policy.registry import PLACERS, build_placer
from tests.policy.placement.builders import make_cluster, make_job

ALL = sorted(PLACERS)


@pytest.mark.parametrize("name", ALL)
def test_every_placer_places_a_share_and_a_whole_gpu_job(name: str) -> None:
    capacity = Capacity(make_cluster(("a", "A100", 2, 4)))
    placer = build_placer(name)
    share = placer.place(make_job(1, gpu_milli=250, cpu_milli=1000), capacity)
    whole = placer.place(make_job(2, gpus=2, memory_mib=1024), capacity)
    assert share is not None and share.milli == 250 and share.cpu_milli == 1000
    assert whole is not None and whole.gpus == 2
    node, (gpu,) = share.node_gpus[0]
    for n, gpus in whole.node_gpus:
        assert n != node or gpu not in gpus


@pytest.mark.parametrize("name", ALL)
def test_every_placer_returns_none_when_nothing_fits(name: str) -> None:
    capacity = Capacity(make_cluster(("a", "A100", 1, 2)))
    placer = build_placer(name)
    assert placer.place(make_job(1, gpus=3, gpus_per_node=3), capacity) is None
    assert placer.place(make_job(2, gpus=1, cpu_milli=64_000), capacity) is None
    assert capacity.free_total == 2 and capacity.cpu_free_milli(0) == 32_000


@pytest.mark.parametrize(
    ("name", "want_node"),
    [("first-fit", 0), ("best-fit", 1), ("packing", 1), ("spread", 2), ("fgd", 1), ("fgd-plus", 1)],
)
def test_share_goes_where_each_placer_says(name: str, want_node: int) -> None:
    capacity = Capacity(make_cluster(("a", "A100", 3, 2)))
    capacity.allocate_share(0, 0, 200)  # node 0: GPU 0 has 800 free, GPU 1 whole
    capacity.allocate_share(1, 0, 500)  # node 1: GPU 0 has 500 free, GPU 1 whole
    capacity.allocate(1, 1)  # node 1: no whole GPU left
    placer = build_placer(name)
    if isinstance(placer, WorkloadAware):  # fgd, fgd-plus, fgd-pwr
        placer.observe_workload([make_job(9, gpus=1)] * 3 + [make_job(10, gpu_milli=500)])
    placement = placer.place(make_job(1, gpu_milli=500), capacity)
    assert placement is not None
    assert placement.node_gpus[0][0] == want_node


def test_fgd_keeps_whole_gpus_for_whole_gpu_demand() -> None:
    """With whole-GPU jobs dominating the mix, a share goes onto the already-shared GPU."""
    capacity = Capacity(make_cluster(("a", "A100", 2, 1)))
    capacity.allocate_share(1, 0, 400)
    placer = FgdPlacer()
    placer.observe_workload([make_job(i, gpus=1) for i in range(9)] + [make_job(20, gpu_milli=300)])
    placement = placer.place(make_job(1, gpu_milli=300), capacity)
    assert placement is not None and placement.node_gpus == ((1, (0,)),)
    assert placer.fragmentation(capacity.state_key(1)) < 300  # 300 left: usable by the share shape


def test_fgd_placing_never_changes_its_mix() -> None:
    """A job retried every cycle must not weigh more in the mix than a job placed at once."""
    capacity = Capacity(make_cluster(("a", "A100", 2, 2)))
    capacity.allocate_share(0, 0, 500)
    placer = FgdPlacer([make_job(1, gpus=1)])
    placer.bind(capacity)
    key = capacity.state_key(0)
    before = placer.fragmentation(key)
    for _ in range(50):
        assert placer.place(make_job(2, gpus=8), capacity) is None  # never fits: tried each cycle
    assert placer.place(make_job(3, gpu_milli=500), capacity) is not None
    assert placer.fragmentation(key) == before == 500  # the half GPU stays useless to 1-GPU jobs


def test_fgd_mix_is_what_it_was_last_given() -> None:
    capacity = Capacity(make_cluster(("a", "A100", 1, 2)))
    capacity.allocate_share(0, 0, 500)
    placer = FgdPlacer()
    placer.bind(capacity)
    key = capacity.state_key(0)
    assert placer.fragmentation(key) == 0  # no workload: nothing counts as a fragment
    placer.observe_workload([make_job(1, gpus=1)])
    assert placer.fragmentation(key) == 500
    placer.observe_workload([make_job(2, gpu_milli=500)])
    assert placer.fragmentation(key) == 0


def test_the_live_cycle_gives_fgd_the_queue_as_its_mix() -> None:
    from gpucommons.engine.cycle import run_cycle
    from gpucommons.policy.registry import build_policy
    from gpucommons.sim.executor import SimulatedExecutor
    from gpucommons.sim.kernel import EventQueue
    from gpucommons.sim.store import InMemoryStore

    cluster = make_cluster(("a", "A100", 1, 2))
    config = build_policy("fifo", "fgd")
    placer = config.placer
    assert isinstance(placer, FgdPlacer)
    store = InMemoryStore(cluster)
    store.submit(make_job(1, gpus=1))
    store.submit(make_job(2, gpus=4))  # never fits: stays pending, in the mix
    run_cycle(store, SimulatedExecutor(EventQueue()), config, 0.0, mix_from_queue=True)
    assert {shape[0]: weight for shape, weight in placer.mix} == {1: 0.5, 4: 0.5}


def test_npu_share_rounds_up_to_a_partition_slice() -> None:
    capacity = Capacity(make_cluster(("n", "RNGD", 1, 2)))
    placement = build_placer("best-fit").place(make_job(1, gpu_milli=200), capacity)
    assert placement is not None and placement.milli == 250


def test_npu_without_partitions_is_never_shared() -> None:
    capacity = Capacity(make_cluster(("n", "ATOM", 1, 2)))
    assert build_placer("fgd").place(make_job(1, gpu_milli=200), capacity) is None


def test_cpu_only_job_takes_cpu_and_memory_only() -> None:
    capacity = Capacity(make_cluster(("a", "A100", 1, 2)))
    placement = build_placer("fgd-plus").place(make_job(1, gpus=0, cpu_milli=4000, memory_mib=2048), capacity)
    assert placement is not None and placement.gpus == 0
    assert capacity.cpu_free_milli(0) == 28_000 and capacity.memory_free_mib(0) == 256 * 1024 - 2048
    assert capacity.free_gpus(0) == 2


@pytest.mark.parametrize("name", ALL)
def test_gang_prefers_one_block(name: str) -> None:
    capacity = Capacity(make_cluster(("a", "H100", 4, 8), block_nodes=2))
    capacity.allocate(0, 4)  # block 0 has 12 free GPUs, block 1 has 16
    placement = build_placer(name).place(make_job(1, gpus=16, topology="required", cpu_milli=1), capacity)
    assert placement is not None and set(placement.nodes) == {2, 3}


def test_required_topology_waits_rather_than_spanning_blocks() -> None:
    capacity = Capacity(make_cluster(("a", "H100", 4, 8), block_nodes=2))
    capacity.allocate(0, 4)
    capacity.allocate(2, 4)
    job = make_job(1, gpus=16, topology="required")
    assert build_placer("best-fit").place(job, capacity) is None
    spanning = build_placer("best-fit").place(make_job(2, gpus=16), capacity)
    assert spanning is not None and len(spanning.nodes) >= 2


def test_nvlink_domain_is_the_group_for_required_jobs() -> None:
    capacity = Capacity(make_cluster(("nvl", "GB200", 4, 4), nvlink_domain_nodes=2))
    capacity.allocate(1, 1)
    placement = build_placer("fgd").place(make_job(1, gpus=8, topology="required"), capacity)
    assert placement is not None and set(placement.nodes) == {2, 3}
