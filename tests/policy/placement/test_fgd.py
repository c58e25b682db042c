"""FGD as the paper's simulator runs it: integer scores, the seeded node order among ties, the typical-pod
mix, and the fill experiment's seed reaching the tie-break."""

from __future__ import annotations

import math

from gpucommons.domain.job import Job
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.placement.fgd import FgdPlacer, frag_score
from gpucommons.policy.placement.scored import after
from gpucommons.policy.protocols import Seeded
from gpucommons.policy.registry import build_placer
from gpucommons.sim.fill import run_fill
from tests.policy.placement.builders import make_cluster, make_job

# three whole-GPU jobs to one half-GPU share
MIX = [make_job(1, gpus=1)] * 3 + [make_job(2, gpu_milli=500)]


def test_frag_score_is_the_truncated_sigmoid() -> None:
    assert frag_score(0.0) == 50
    assert frag_score(1000.0) == int(100 / (1 + math.exp(-1))) == 73
    assert frag_score(-1000.0) == 26
    assert frag_score(40.0) == 50 and frag_score(41.0) == 51  # 100 x sigmoid(0.041) = 51.02
    assert frag_score(-1e9) == 0 and frag_score(1e9) == 100


def _two_nodes() -> Capacity:
    """Node 0: 700 milli free on GPU 0; node 1: 600. A 300-milli share lowers the expected fragmentation
    by 125 milli on node 0 and 150 on node 1: both score 53."""
    capacity = Capacity(make_cluster(("a", "A100", 2, 2)))
    capacity.allocate_share(0, 0, 300)
    capacity.allocate_share(1, 0, 400)
    return capacity


def test_integer_ties_go_to_the_seeded_node_order() -> None:
    job = make_job(9, gpu_milli=300, cpu_milli=1000)
    chosen = set()
    for seed in range(12):
        capacity = _two_nodes()
        placer = FgdPlacer(MIX, seed=seed)
        placer.bind(capacity)
        gains = [
            placer.fragmentation(k) - placer.fragmentation(after(k, job, 300, o))
            for k, o in ((capacity.state_key(0), 700), (capacity.state_key(1), 600))
        ]
        assert gains == [125.0, 150.0] and frag_score(gains[0]) == frag_score(gains[1]) == 53
        placement = placer.place(job, capacity)
        assert placement is not None
        node = placement.node_gpus[0][0]
        assert node == min((0, 1), key=placer.rank)  # not the larger exact gain: the order decides
        chosen.add(node)
    assert chosen == {0, 1}  # the order varies with the seed


def test_share_takes_the_first_gpu_that_reaches_the_node_score() -> None:
    capacity = Capacity(make_cluster(("a", "A100", 1, 2)))
    capacity.allocate_share(0, 0, 300)  # GPU 0: 700 free, gain 125 -> 53
    capacity.allocate_share(0, 1, 400)  # GPU 1: 600 free, gain 150 -> 53
    placement = FgdPlacer(MIX).place(make_job(9, gpu_milli=300), capacity)
    assert placement is not None and placement.node_gpus == ((0, (0,)),)


def test_a_higher_integer_score_beats_the_node_order() -> None:
    capacity = Capacity(make_cluster(("a", "A100", 3, 2)))
    capacity.allocate_share(0, 0, 200)
    capacity.allocate_share(1, 0, 500)
    capacity.allocate(1, 1)
    for seed in range(6):
        placer = FgdPlacer(MIX, seed=seed)
        with capacity.what_if():
            placement = placer.place(make_job(9, gpu_milli=500), capacity)
            assert placement is not None and placement.node_gpus == ((1, (0,)),)  # 59 beats 57 and 40


def test_fresh_nodes_are_taken_in_the_seeded_order() -> None:
    firsts = set()
    for seed in range(8):
        capacity = Capacity(make_cluster(("a", "A100", 4, 2)))
        placer = FgdPlacer(MIX, seed=seed)
        placement = placer.place(make_job(9, gpus=1), capacity)
        assert placement is not None
        first = placement.node_gpus[0][0]
        assert first == min(range(4), key=placer.rank)
        again = placer.place(make_job(10, gpus=1), capacity)  # the second GPU of that node scores best
        assert again is not None and again.node_gpus[0][0] == first
        firsts.add(first)
    assert len(firsts) > 1


def test_same_seed_same_order_and_reseed_changes_it() -> None:
    capacity = Capacity(make_cluster(("a", "A100", 16, 1)))
    a, b = FgdPlacer(seed=7), FgdPlacer(seed=7)
    a.bind(capacity)
    b.bind(capacity)
    order = [a.rank(n) for n in range(16)]
    assert order == [b.rank(n) for n in range(16)] and sorted(order) == list(range(16))
    b.reseed(8)
    assert [b.rank(n) for n in range(16)] != order
    assert isinstance(a, Seeded)


def test_mix_is_the_simulators_typical_pods() -> None:
    """Every pod counts once under (GPUs, milli, CPU, models), CPU-only pods too and memory never; the
    most popular shapes covering 95 % of the pods are kept and renormalised."""
    jobs: list[Job] = []
    jobs += [make_job(i, gpus=1, cpu_milli=4000, memory_mib=1024 * (i % 3)) for i in range(10)]
    jobs += [make_job(20 + i, gpus=0, cpu_milli=8000) for i in range(6)]
    jobs += [make_job(30 + i, gpu_milli=250, cpu_milli=2000) for i in range(3)]
    jobs += [make_job(40, gpus=2, cpu_milli=16_000)]  # 1 of 20 pods: beyond the 95 % kept
    placer = FgdPlacer(jobs)
    assert [(shape, round(share * 19)) for shape, share in placer.mix] == [
        ((1, 1000, 4000, 0, frozenset()), 10),
        ((0, 0, 8000, 0, frozenset()), 6),
        ((1, 250, 2000, 0, frozenset()), 3),
    ]


def test_equal_counts_rank_the_larger_shape_first() -> None:
    placer = FgdPlacer([make_job(1, gpu_milli=300, cpu_milli=1000), make_job(2, gpus=1, cpu_milli=4000)])
    assert [shape[2] for shape, _ in placer.mix] == [4000, 1000]


def test_cpu_only_shapes_count_every_free_gpu_and_memory_is_no_part() -> None:
    capacity = Capacity(make_cluster(("a", "A100", 1, 2)))
    placer = FgdPlacer([make_job(1, gpus=0, cpu_milli=1000), make_job(2, gpus=1, memory_mib=10**9)])
    placer.bind(capacity)
    assert placer.fragmentation(capacity.state_key(0)) == 0.5 * 2000  # the 1-GPU shape fits: memory unseen


def test_fill_seed_reaches_the_tie_break() -> None:
    cluster = make_cluster(("a", "A100", 6, 2), ("t", "T4", 6, 2))
    pods = [make_job(1, gpus=1, cpu_milli=4000), make_job(2, gpu_milli=500, cpu_milli=2000)]
    placer = FgdPlacer(seed=99)
    first = run_fill(pods, cluster, placer, 0.4, seed=1)
    assert placer.seed == 1  # one seed for the arrival order and the node order
    assert run_fill(pods, cluster, build_placer("fgd"), 0.4, seed=1) == first  # byte for byte
