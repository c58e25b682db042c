"""The ``reservations`` stage through ``schedule()`` on hand-built cycles: which nodes an occurrence
holds, the drain before its start (only jobs that end by then backfill those nodes), the eviction at
its start and the tenant's gang starting there out of turn, keeping others off during the window,
lending idle GPUs and taking them back, recurrence, ``within``, and the reasons jobs are given."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site, Topology
from gpucommons.domain.job import Job
from gpucommons.domain.reservation import Reservation
from gpucommons.policy.constraints import Commons
from gpucommons.policy.constraints.reservations import ReservationStage, when_text
from gpucommons.policy.cycle import schedule
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.registry import build_policy
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot
from tests.conftest import free_state, make_cluster, make_job, make_snapshot, running

START, END = 10_000.0, 20_000.0
ALL8 = tuple(range(8))
CLUSTER = make_cluster(("p", 4, 8))  # nodes 0-3, eight GPUs each


def reserve(**kwargs: object) -> Reservation:
    fields: dict[str, object] = {"id": 7, "tenant": "r", "gpus": 16, "start_s": START, "end_s": END}
    fields.update(kwargs)
    return Reservation(**fields)  # type: ignore[arg-type]


def decide(
    now: float,
    waiting: Iterable[Job | PendingJob] = (),
    busy: Iterable[RunningJob] = (),
    reservations: tuple[Reservation, ...] = (reserve(),),
    policy: str = "fifo",
    cluster: Cluster = CLUSTER,
    commons: Commons | None = None,
) -> tuple[Snapshot, CycleResult]:
    snapshot = replace(make_snapshot(cluster, waiting, busy), reservations=reservations)
    before = free_state(snapshot.capacity)
    result = schedule(snapshot, build_policy(policy, commons=commons), now)
    assert free_state(snapshot.capacity) == before  # hiding nodes leaves the snapshot as it was
    return snapshot, result


def nodes_of(result: CycleResult) -> dict[int, tuple[int, ...]]:
    return {s.job.id: s.placement.nodes for s in result.starts}


def test_a_run_without_reservations_opens_no_gate() -> None:
    snapshot = make_snapshot(CLUSTER)
    assert ReservationStage().open(snapshot, 0.0) is None
    over = replace(snapshot, reservations=(reserve(),))
    assert ReservationStage().open(over, END) is None  # every occurrence has ended


def test_before_the_start_long_jobs_keep_off_and_short_ones_backfill() -> None:
    """Nothing runs, so the lowest nodes are held (0 and 1); jobs whose time limit reaches the start
    go to nodes 2 and 3, a third waits for the reservation, and a short job may use a held node."""
    long_jobs = [make_job(i, 8, tenant="a", submit_s=float(i), estimate_s=START) for i in (1, 2, 3)]
    short = make_job(4, 8, tenant="b", submit_s=4.0, estimate_s=START - 1_000)
    _, result = decide(1_000.0, [*long_jobs, short], policy="las")
    placed = nodes_of(result)
    assert {placed[1], placed[2]} == {(2,), (3,)} and placed[4] in ((0,), (1,))
    reason = result.reason_for(3)
    assert reason is not None and reason.code == "reservation"
    assert reason.detail == (
        f"16 GPUs are held for reservation 7 from {when_text(START)}; "
        "only a job whose time limit ends by then may use them"
    )
    assert dict(reason.figures)["held_gpus"] == 16.0


def test_a_job_that_ends_exactly_at_the_start_may_backfill() -> None:
    job = make_job(1, 8, tenant="a", estimate_s=START - 1_000.0)
    _, result = decide(1_000.0, [job], busy=[running(make_job(90, 16, tenant="x"), [(2, ALL8), (3, ALL8)])])
    assert nodes_of(result)[1] in ((0,), (1,))


def test_the_tenants_job_waiting_for_the_start_says_how_far_the_drain_is() -> None:
    """Node 1 still runs a job that ends before the start (it drains in time, so it is held); nodes 2
    and 3 are busy past the start. The tenant's gang, submitted early, waits for the start."""
    busy = [
        running(make_job(90, 4, tenant="a", estimate_s=5_000.0), [(1, (0, 1, 2, 3))], started_s=1_000.0),
        running(make_job(91, 16, tenant="a", estimate_s=50_000.0), [(2, ALL8), (3, ALL8)]),
    ]
    gang = make_job(1, 16, tenant="r", submit_s=500.0, estimate_s=END - START)
    _, result = decide(2_000.0, [gang], busy)
    reason = result.reason_for(1)
    assert reason is not None and reason.code == "reservation"
    assert reason.detail == f"reservation 7 starts at {when_text(START)}; 12 of 16 GPUs drained"
    assert dict(reason.figures) == {
        "reservation": 7.0,
        "start_s": START,
        "drained_gpus": 12.0,
        "reserved_gpus": 16.0,
    }
    assert reason.estimated_start_s == START


def test_when_text_is_utc() -> None:
    assert when_text(1_764_943_200.0) == "2025-12-05 14:00 UTC"


def test_nodes_that_drain_in_time_are_held_and_an_unstoppable_job_is_never_on_them() -> None:
    """Node 0 runs a preemptible job past the start, node 1 a non-preemptible one: the reservation
    holds nodes 2 and 3, so a long job started now goes on node 0's free GPUs, not there."""
    busy = [
        running(make_job(90, 4, tenant="a", estimate_s=90_000.0), [(0, (0, 1, 2, 3))]),
        running(make_job(91, 4, tenant="a", estimate_s=90_000.0, preemptible=False), [(1, (0, 1, 2, 3))]),
    ]
    long_job = make_job(1, 4, tenant="b", estimate_s=90_000.0)
    _, result = decide(1_000.0, [long_job], busy, policy="las")
    assert nodes_of(result)[1] in ((0,), (1,))


def test_at_the_start_what_still_runs_there_is_evicted_and_the_gang_starts_out_of_turn() -> None:
    """Every node is busy past the start: the held ones are those whose jobs end soonest (1 and 2).
    At the start their jobs are evicted and the gang starts on them, though an older job is ahead of
    it in the strict line and cannot start."""
    ends = {0: 90_000.0, 1: 30_000.0, 2: 25_000.0, 3: 80_000.0}
    busy = [running(make_job(90 + n, 8, tenant="a", estimate_s=end), [(n, ALL8)]) for n, end in ends.items()]
    ahead = make_job(1, 32, tenant="b", submit_s=1.0)
    gang = make_job(2, 16, tenant="r", submit_s=START, estimate_s=END - START)
    _, result = decide(START, [ahead, gang], busy, policy="fifo")
    evicted = sorted((p.job_id, p.by_job) for p in result.preemptions)
    assert evicted == [(91, 0), (92, 0)]
    assert all(
        p.reason == f"reservation 7 holds its nodes from {when_text(START)}" for p in result.preemptions
    )
    assert sorted(nodes_of(result)[2]) == [1, 2]  # and job 1, ahead, still waits
    assert 1 not in nodes_of(result) and result.reason_for(1) is not None


def test_checkpoint_aware_holds_the_nodes_whose_eviction_loses_least() -> None:
    """All nodes busy past the start. By end time nodes 1 and 2 would be held; with checkpoint
    awareness nodes 0 and 3, whose jobs checkpoint often and so lose least at the start."""
    ends = {0: 90_000.0, 1: 30_000.0, 2: 25_000.0, 3: 80_000.0}
    busy = []
    for n, end in ends.items():
        job = replace(
            make_job(90 + n, 8, tenant="a", estimate_s=end),
            checkpoint_interval_s=600.0 if n in (0, 3) else None,
        )
        busy.append(running(job, [(n, ALL8)]))
    gang = make_job(2, 16, tenant="r", submit_s=START, estimate_s=END - START)
    _, old = decide(START, [gang], busy)
    _, aware = decide(START, [gang], busy, commons=Commons(checkpoint_aware=True))
    assert sorted(p.job_id for p in old.preemptions) == [91, 92]
    assert sorted(p.job_id for p in aware.preemptions) == [90, 93]
    assert sorted(nodes_of(aware)[2]) == [0, 3]


def test_during_the_window_only_the_tenant_uses_the_held_nodes() -> None:
    others = [make_job(i, 8, tenant="a", submit_s=float(i), estimate_s=100.0) for i in (1, 2, 3)]
    mine = make_job(4, 8, tenant="r", submit_s=4.0, estimate_s=100.0)
    _, result = decide(START + 100.0, [*others, mine], policy="las")
    placed = nodes_of(result)
    assert placed[4] in ((0,), (1,))
    assert {placed[1], placed[2]} == {(2,), (3,)}
    reason = result.reason_for(3)
    assert reason is not None and reason.code == "reservation"
    assert reason.detail == f"16 GPUs are held for reservation 7 until {when_text(END)}"
    assert reason.estimated_start_s == END


def test_the_tenants_jobs_already_there_keep_the_nodes_held() -> None:
    """During the window the nodes the tenant's jobs use are held first: its job on node 3 keeps node
    3 held although idle node 0 has a lower index."""
    busy = [running(make_job(90, 8, tenant="r", estimate_s=END), [(3, ALL8)], started_s=START)]
    job = make_job(1, 8, tenant="a", estimate_s=100.0)
    more = make_job(2, 8, tenant="a", submit_s=1.0, estimate_s=100.0)
    _, result = decide(START + 10.0, [job, more], busy, policy="las")
    assert sorted(nodes_of(result).values()) == [(1,), (2,)]  # node 0 is held with node 3


@pytest.mark.parametrize("checkpoint_aware", [False, True])
def test_idle_reserved_gpus_are_lent_to_short_preemptible_jobs_and_taken_back(checkpoint_aware: bool) -> None:
    res = reserve(lend_idle=True)
    busy = [running(make_job(90, 16, tenant="x", estimate_s=END, preemptible=False), [(2, ALL8), (3, ALL8)])]
    short = make_job(1, 8, tenant="a", estimate_s=END - START - 1_000.0)
    too_long = make_job(2, 8, tenant="a", submit_s=1.0, estimate_s=END)
    pinned = make_job(3, 8, tenant="a", submit_s=2.0, estimate_s=100.0, preemptible=False)
    _, result = decide(START + 10.0, [short, too_long, pinned], busy, (res,), "las")
    assert list(nodes_of(result)) == [1]  # only the short preemptible one borrows
    # The tenant asks for 12 GPUs: of the two borrowers, one must go; the one that loses least.
    lent = [
        running(
            replace(make_job(1, 8, tenant="a", estimate_s=5_000.0), checkpoint_interval_s=60.0),
            [(0, ALL8)],
            started_s=START + 10.0,
        ),
        running(make_job(4, 4, tenant="b", estimate_s=5_000.0), [(1, (0, 1, 2, 3))], started_s=START + 100.0),
    ]
    ask = make_job(5, 12, tenant="r", submit_s=START + 200.0, estimate_s=1_000.0)
    commons = Commons(checkpoint_aware=checkpoint_aware)
    _, taken = decide(START + 300.0, [ask], [*busy, *lent], (res,), "las", commons=commons)
    # Job 1 last checkpointed 50 s ago (8 GPUs), job 4 started 200 s ago with none (4 GPUs): by loss,
    # job 1 alone frees enough; newest first, job 4 goes and then job 1 too.
    want = [1] if checkpoint_aware else [1, 4]
    assert sorted(p.job_id for p in taken.preemptions) == want
    assert all(p.by_job == 0 for p in taken.preemptions)
    assert 5 in nodes_of(taken)


def test_without_lending_idle_reserved_gpus_stay_idle() -> None:
    short = make_job(1, 8, tenant="a", estimate_s=100.0)
    busy = [running(make_job(90, 16, tenant="x"), [(2, ALL8), (3, ALL8)])]
    _, result = decide(START + 10.0, [short], busy)
    assert result.starts == ()
    reason = result.reason_for(1)
    assert reason is not None and reason.code == "reservation"


def test_a_recurring_reservation_drains_for_its_next_occurrence() -> None:
    nightly = reserve(every_s=50_000.0, occurrences=2)
    long_job = make_job(1, 8, tenant="a", estimate_s=40_000.0)  # from 25,000 it would reach 60,000
    _, between = decide(25_000.0, [long_job], reservations=(nightly,), policy="las")
    assert nodes_of(between)[1] in ((2,), (3,))
    _, after = decide(70_000.0, [long_job], reservations=(nightly,), policy="las")  # the last is over
    _, none = decide(70_000.0, [long_job], reservations=(), policy="las")
    assert nodes_of(after) == nodes_of(none)


def test_within_one_block_the_reservation_holds_nodes_of_one_block() -> None:
    pool = Pool("p", "site", CATALOG["A100"], 6, 8, topology=Topology(block_nodes=3))
    cluster = Cluster.build("blocks", (Site("site"),), (pool,))
    busy = [
        running(make_job(90 + n, 8, tenant="a", estimate_s=90_000.0), [(n, ALL8)]) for n in (1, 2)
    ]  # block 0 is nodes 0-2, block 1 nodes 3-5
    long_jobs = [make_job(i, 8, tenant="b", submit_s=float(i), estimate_s=90_000.0) for i in (1, 2, 3)]
    res = reserve(within="block")
    _, result = decide(1_000.0, long_jobs, busy, (res,), "fifo", cluster)
    # Block 0 has one node free of long jobs, block 1 three: two of those are held.
    placed = sorted(n for nodes in nodes_of(result).values() for n in nodes)
    assert placed[0] == 0 and len(placed) == 2 and placed[1] in (3, 4, 5)
    reason = result.reason_for(3)
    assert reason is not None and reason.code == "reservation"
    _, anywhere = decide(1_000.0, long_jobs, busy, (reserve(),), "fifo", cluster)
    assert len(nodes_of(anywhere)) == 2  # without ``within`` the free node 0 is held with another


def test_two_reservations_hold_different_nodes() -> None:
    first, second = reserve(id=1, gpus=8), reserve(id=2, tenant="q", gpus=8)
    long_jobs = [make_job(i, 8, tenant="a", submit_s=float(i), estimate_s=90_000.0) for i in (1, 2, 3)]
    _, result = decide(1_000.0, long_jobs, reservations=(first, second), policy="las")
    assert sorted(nodes_of(result).values()) == [(2,), (3,)]
