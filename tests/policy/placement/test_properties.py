"""Properties every placer keeps, on random clusters and random job streams (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import MILLI, Capacity
from gpucommons.policy.placement.fit import group_of
from gpucommons.policy.registry import PLACERS, build_placer
from tests.policy.placement.builders import make_cluster, make_job

MODELS = ("A100", "H100", "RNGD")


@st.composite
def jobs(draw: st.DrawFn) -> list[Job]:
    out = []
    for i in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(("share", "whole", "gang", "cpu")))
        accepted = frozenset(draw(st.sets(st.sampled_from(MODELS), max_size=2)))
        common = {
            "accepted_models": accepted,
            "cpu_milli": draw(st.sampled_from((0, 500, 4000))),
            "memory_mib": draw(st.sampled_from((0, 1024))),
        }
        if kind == "share":
            out.append(make_job(i, gpus=1, gpu_milli=draw(st.integers(50, 999)), **common))
        elif kind == "whole":
            out.append(make_job(i, gpus=draw(st.integers(1, 4)), **common))
        elif kind == "gang":
            out.append(
                make_job(
                    i,
                    gpus=draw(st.sampled_from((4, 6, 8, 12))),
                    topology=draw(st.sampled_from(("preferred", "required"))),
                    **common,
                )
            )
        else:
            out.append(make_job(i, gpus=0, cpu_milli=draw(st.integers(1, 8000))))
    return out


def _cluster(block_nodes: int, nvlink: int):  # type: ignore[no-untyped-def]
    return make_cluster(
        ("a", "A100", 3, 4),
        ("h", "H100", 2, 8),
        ("r", "RNGD", 2, 2),
        block_nodes=block_nodes,
        nvlink_domain_nodes=nvlink,
    )


def _check(job: Job, placement: Placement, capacity: Capacity, whole: dict[tuple[int, int], int]) -> None:
    cluster = capacity.cluster
    for node, gpus in placement.node_gpus:
        assert job.accepts(cluster.nodes[node].model)
        for gpu in gpus:
            if placement.milli < MILLI:
                assert whole.get((node, gpu), 0) <= 0, "a share landed on a GPU held whole"
                whole[(node, gpu)] = whole.get((node, gpu), 0) - 1  # mark as shared
            else:
                assert (node, gpu) not in whole, "a whole-GPU job landed on a used GPU"
                whole[(node, gpu)] = 1
    if job.topology == "required" and len(placement.nodes) > 1:
        groups = group_of(cluster)
        assert len({(cluster.nodes[n].pool, groups[n]) for n in placement.nodes}) == 1


@settings(max_examples=25, deadline=None)
@given(
    stream=jobs(),
    name=st.sampled_from(sorted(PLACERS)),
    block=st.sampled_from((0, 1, 2)),
    nvlink=st.sampled_from((1, 2)),
)
def test_placements_respect_shares_models_and_topology(
    stream: list[Job], name: str, block: int, nvlink: int
) -> None:
    capacity = Capacity(_cluster(block, nvlink))
    placer = build_placer(name)
    whole: dict[tuple[int, int], int] = {}
    for job in stream:
        placement = placer.place(job, capacity)
        if placement is not None:
            _check(job, placement, capacity, whole)
    cluster = capacity.cluster
    for node in range(len(cluster.nodes)):
        assert capacity.cpu_free_milli(node) >= 0 and capacity.memory_free_mib(node) >= 0
        for gpu in range(cluster.nodes[node].gpus):
            assert 0 <= capacity.gpu_free_milli(node, gpu) <= MILLI  # no GPU share above 1.0


def _state(capacity: Capacity) -> tuple[object, ...]:
    nodes = range(len(capacity.cluster.nodes))
    return (
        capacity.free_total,
        capacity.allocated_milli,
        tuple(capacity.free_indices(n) for n in nodes),
        tuple(capacity.state_key(n) for n in nodes),
        tuple(
            tuple(sorted(capacity.nodes_with_free(p, k)))
            for p in range(len(capacity.cluster.pools))
            for k in range(capacity.cluster.pools[p].gpus_per_node + 1)
        ),
    )


@settings(max_examples=25, deadline=None)
@given(before=jobs(), trial=jobs(), name=st.sampled_from(sorted(PLACERS)))
def test_what_if_restores_capacity_exactly(before: list[Job], trial: list[Job], name: str) -> None:
    capacity = Capacity(_cluster(2, 1))
    placer = build_placer(name)
    kept = [p for p in (placer.place(j, capacity) for j in before) if p is not None]
    want = _state(capacity)
    classes = {k: list(v) for k, v in capacity.classes().items()}
    with capacity.what_if():
        for job in trial:
            placer.place(job, capacity)
        mark = capacity.mark()
        for placement in kept[:2]:
            capacity.give(placement)
        capacity.rollback(mark)
    assert _state(capacity) == want
    assert {k: sorted(v) for k, v in capacity.classes().items()} == {k: sorted(v) for k, v in classes.items()}


@settings(max_examples=20, deadline=None)
@given(stream=jobs(), name=st.sampled_from(sorted(PLACERS)))
def test_give_returns_everything_take_took(stream: list[Job], name: str) -> None:
    capacity = Capacity(_cluster(0, 1))
    empty = _state(capacity)
    placer = build_placer(name)
    placements = [p for p in (placer.place(j, capacity) for j in stream) if p is not None]
    replay = Capacity(capacity.cluster)
    for placement in placements:
        replay.take(placement)
    assert _state(replay)[:4] == _state(capacity)[:4]
    for placement in reversed(placements):
        capacity.give(placement)
    assert _state(capacity)[:4] == empty[:4]
