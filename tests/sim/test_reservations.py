"""Reservations and checkpoints in the replay (design note 0016): the reserved gang starts at each
occurrence's start under every policy, a window's edges are events, a checkpointing job keeps only the
work up to its last checkpoint, and the workload and report helpers."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.domain.reservation import Reservation
from gpucommons.errors import ConfigError
from gpucommons.policy.registry import POLICIES, build_policy
from gpucommons.sim.executor import SimulatedExecutor
from gpucommons.sim.kernel import EventQueue
from gpucommons.sim.report_reservations import (
    delay_gpu_hours,
    others_waits_s,
    reservation_figures,
    reserved_gpu_hours,
    start_delays,
)
from gpucommons.sim.reservations import (
    CheckpointPlan,
    ReservationPlan,
    build_workload,
    occurrence_starts,
    with_checkpoints,
)
from gpucommons.sim.runner import SimOptions, simulate
from gpucommons.sim.scenario import proportional_quotas, scale_load
from gpucommons.sim.scenariofile import parse_scenario
from gpucommons.sim.traces.philly import read_philly
from tests.components import require_component
from tests.conftest import make_cluster, make_job
from tests.sim.test_traces import PHILLY_CSV

H = 3600.0
CLUSTER = make_cluster(("p", 6, 8))


def busy_trace(seed: int = 3, count: int = 400) -> list[Job]:
    """Jobs of three tenants arriving every five minutes on average, from ten minutes to 5.5 hours."""
    rng = random.Random(seed)
    jobs, t = [], 0.0
    for i in range(1, count + 1):
        t += rng.expovariate(1 / 300)
        duration = rng.choice([600.0, 1_800.0, 3_600.0, 7_200.0, 20_000.0])
        jobs.append(Job(i, rng.choice("abc"), rng.choice([1, 2, 4, 8, 16]), t, duration, duration))
    return jobs


RESERVATION = Reservation(1, "r", 24, 5 * H, 8 * H, every_s=10 * H, occurrences=4)


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_the_reserved_gang_starts_at_every_occurrence(policy: str) -> None:
    """The cluster is saturated well past the last occurrence; the gang starts in the cycle at each
    start (the replay runs one there), and without the reservation it waits for nodes to drain."""
    workload = build_workload(busy_trace(), (ReservationPlan(RESERVATION, 24),), None, 1, CLUSTER, "test")
    assert [m.reserved_start_s for m in workload.made] == [5 * H, 15 * H, 25 * H, 35 * H]
    held = simulate(
        workload.jobs, CLUSTER, build_policy(policy), SimOptions(reservations=workload.reservations)
    )
    assert [row["delay_s"] for row in start_delays(held, workload.made)] == [0.0, 0.0, 0.0, 0.0]
    figures = reservation_figures(held, workload.made)
    assert figures["reservation_max_start_delay_s"] == 0.0
    assert figures["reserved_gpu_hours"] == pytest.approx(4 * 24 * 3.0)
    assert figures["reserved_idle_gpu_hours"] == pytest.approx(0.0)  # the gang fills each window
    if policy in ("fifo", "quota"):
        free = simulate(workload.jobs, CLUSTER, build_policy(policy), SimOptions())
        delays = [row["delay_s"] for row in start_delays(free, workload.made)]
        assert all(d is not None and d > H for d in delays)


def test_the_window_start_is_an_event_and_evicts_what_runs_there() -> None:
    """Job 1 declares 500 s and may use the held node before the start, but overruns; nothing arrives
    or ends at 1,000 s, yet the start evicts it. It cannot run again beside the held node and restarts
    when the window closes. Job 2, whose time limit reaches the start, waits until the start frees
    the node that is not held."""
    cluster = make_cluster(("p", 2, 8))
    overrun = make_job(1, 16, tenant="a", duration_s=100_000.0, estimate_s=500.0)
    long_job = make_job(2, 8, tenant="b", submit_s=1.0, duration_s=10.0, estimate_s=2_000.0)
    res = Reservation(1, "r", 8, 1_000.0, 5_000.0)
    options = SimOptions(reservations=(res,), restart_overhead_s=0.0)
    result = simulate([overrun, long_job], cluster, build_policy("las"), options)
    first, second = result.records
    assert first.preemptions == 1
    spans = sorted((s.job_id, s.start_s, s.end_s) for s in result.segments)
    assert spans[0] == (1, 0.0, 1_000.0) and spans[1][:2] == (1, 5_000.0)
    assert second.first_start_s == 1_000.0


def test_a_job_waiting_on_a_reservation_without_end_does_not_keep_the_replay_running() -> None:
    cluster = make_cluster(("p", 1, 8))
    always = Reservation(1, "r", 8, 0.0, 10.0, every_s=10.0)  # back to back, forever
    result = simulate(
        [make_job(1, 8, tenant="a")], cluster, build_policy("fifo"), SimOptions(reservations=(always,))
    )
    assert result.records[0].first_start_s is None


def test_a_checkpointing_job_keeps_the_work_up_to_its_last_checkpoint() -> None:
    finishes: EventQueue[tuple[int, int]] = EventQueue()
    executor = SimulatedExecutor(finishes, restart_overhead_s=0.0, checkpointing=True)
    every_min = Job(1, "a", 2, 0.0, 1_000.0, 1_000.0, checkpoint_interval_s=60.0)
    never = Job(2, "a", 2, 0.0, 1_000.0, 1_000.0)
    placement = Placement(((0, (0, 1)),))
    for job in (every_min, never):
        executor.start(job, placement, 0.0)
        executor.preempt(job.id, 150.0)  # 2.5 intervals: 120 s kept
        executor.start(job, placement, 200.0)
    times = sorted(finishes.pop() for _ in range(4))[2:]
    assert [(t, job_id) for t, (job_id, _) in times] == [(1_080.0, 1), (1_200.0, 2)]
    assert executor.loss_gpu_s == pytest.approx(2 * 30.0 + 2 * 150.0)


def test_without_checkpointing_a_preempted_job_keeps_all_its_work() -> None:
    finishes: EventQueue[tuple[int, int]] = EventQueue()
    executor = SimulatedExecutor(finishes, restart_overhead_s=0.0)
    job = Job(1, "a", 2, 0.0, 1_000.0, 1_000.0, checkpoint_interval_s=60.0)
    executor.start(job, Placement(((0, (0, 1)),)), 0.0)
    executor.preempt(1, 150.0)
    executor.start(job, Placement(((0, (0, 1)),)), 200.0)
    assert max(finishes.pop()[0] for _ in range(2)) == 1_050.0
    assert executor.loss_gpu_s == 0.0


def test_checkpoint_aware_victims_lose_less_in_a_checkpointing_replay() -> None:
    """LAS on a saturated cluster where half the jobs checkpoint every ten minutes."""
    jobs = with_checkpoints(busy_trace(seed=5, count=300), CheckpointPlan(600.0, 0.5), seed=5)
    options = SimOptions(checkpointing=True)
    from gpucommons.policy.constraints import Commons

    old = simulate(jobs, CLUSTER, build_policy("las"), options)
    aware = simulate(jobs, CLUSTER, build_policy("las", commons=Commons(checkpoint_aware=True)), options)
    assert old.preemption_loss_gpu_s > 0
    assert aware.preemption_loss_gpu_s < old.preemption_loss_gpu_s
    delivered = sum(s.devices * (s.end_s - s.start_s) for s in aware.segments)
    work = sum(j.gpus * j.duration_s for j in jobs)
    assert delivered == pytest.approx(work + aware.preemption_loss_gpu_s)  # work + loss, still


def test_with_checkpoints_marks_the_same_jobs_for_the_same_seed() -> None:
    jobs = busy_trace(count=200)
    plan = CheckpointPlan(900.0, fraction=0.5, min_gpus=2)
    first, again = with_checkpoints(jobs, plan, 11), with_checkpoints(jobs, plan, 11)
    marked = [j.id for j in first if j.checkpoint_interval_s is not None]
    assert marked == [j.id for j in again if j.checkpoint_interval_s is not None]
    assert all(j.gpus >= 2 for j in first if j.checkpoint_interval_s is not None)
    big = sum(1 for j in jobs if j.gpus >= 2)
    assert 0.3 * big < len(marked) < 0.7 * big
    assert {j.checkpoint_interval_s for j in first} == {None, 900.0}


def test_gangs_of_a_reservation_without_end_are_made_up_to_the_last_arrival() -> None:
    weekly = Reservation(3, "r", 8, 10.0, 20.0, every_s=100.0)
    assert occurrence_starts(weekly, 250.0) == [10.0, 110.0, 210.0]
    jobs = [make_job(5, 1, submit_s=250.0), make_job(9, 1, submit_s=0.0)]
    workload = build_workload(jobs, (ReservationPlan(weekly, 8, 5.0),), None, 1, CLUSTER, "test")
    gangs = [j for j in workload.jobs if j.tenant == "r"]
    assert [(j.id, j.submit_s, j.gpus, j.duration_s, j.preemptible) for j in gangs] == [
        (10, 10.0, 8, 5.0, False),
        (11, 110.0, 8, 5.0, False),
        (12, 210.0, 8, 5.0, False),
    ]
    assert not workload.checkpointing


@pytest.mark.parametrize(
    ("plans", "message"),
    [
        ((ReservationPlan(Reservation(1, "r", 8, 0.0, 1.0, model="H100")),), "has no H100"),
        ((ReservationPlan(Reservation(1, "r", 64, 0.0, 1.0)),), "64 GPUs asked, the cluster has 48"),
        ((ReservationPlan(Reservation(1, "r", 8, 0.0, 1.0), job_gpus=16),), "job_gpus 16 exceeds its 8"),
        ((ReservationPlan(Reservation(1, "r", 8, 0.0, 1.0)),) * 2, "ids must be unique"),
    ],
)
def test_plans_the_cluster_cannot_hold_are_one_line_errors(
    plans: tuple[ReservationPlan, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_workload([], plans, None, 1, CLUSTER, "s.toml")


def test_the_report_compares_the_others_with_a_replay_without_reservations() -> None:
    workload = build_workload(busy_trace(), (ReservationPlan(RESERVATION, 24),), None, 1, CLUSTER, "test")
    held = simulate(
        workload.jobs, CLUSTER, build_policy("las"), SimOptions(reservations=workload.reservations)
    )
    free = simulate(workload.jobs, CLUSTER, build_policy("las"), SimOptions(reservations=()))
    assert delay_gpu_hours(held, held) == 0.0
    delay = delay_gpu_hours(held, free)
    waits = [
        r.job.gpus * ((r.end_s or 0) - r.job.submit_s - r.run_s - ((f.end_s or 0) - f.job.submit_s - f.run_s))
        for r, f in zip(held.records, free.records, strict=True)
        if r.job.tenant != "r" and r.end_s is not None and f.end_s is not None
    ]
    assert delay == pytest.approx(sum(waits) / H)
    avg_s, p99_s = others_waits_s(held)
    assert 0 < avg_s <= p99_s
    reserved_h, idle_h = reserved_gpu_hours(held)
    assert reserved_h == pytest.approx(288.0) and idle_h == pytest.approx(0.0)


def test_a_scenario_file_declares_reservations_and_checkpoints(tmp_path: Path) -> None:
    text = """
checkpoint_aware = true
[checkpoints]
interval_s = 1800
fraction = 0.5
[[reservations]]
tenant = "consortium"
gpus = 512
model = "P40"
start_h = 24
duration_h = 24
every_h = 168
job_gpus = 512
job_duration_h = 20
[[reservations]]
id = 9
tenant = "night"
gpus = 16
start_h = 0
duration_h = 6
every_h = 24
occurrences = 5
within = "block"
lend_idle = true
"""
    run = parse_scenario(text, tmp_path / "s.toml").resolve()
    assert run.checkpoint_aware
    assert run.checkpoints == CheckpointPlan(1800.0, 0.5, 1)
    first, second = run.reservations
    assert first == ReservationPlan(
        Reservation(1, "consortium", 512, 24 * H, 48 * H, model="P40", every_s=168 * H), 512, 20 * H
    )
    assert second.reservation == Reservation(
        9, "night", 16, 0.0, 6 * H, within="block", lend_idle=True, every_s=24 * H, occurrences=5
    )
    assert second.job_gpus is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[reservations]]\ntenant = "t"\ngpus = 8\nstart_h = 0\nduration_h = 24\nevery_h = 12\n',
            "reservations.0: reservation 1: it repeats before an occurrence ends",
        ),
        (
            '[[reservations]]\ntenant = "t"\ngpus = 8\nstart_h = 0\nduration_h = 1\nwithin = "rack"\n',
            "reservations.0.within",
        ),
        ('[[reservations]]\ntenant = "t"\ngpus = 0\nstart_h = 0\nduration_h = 1\n', "reservations.0.gpus"),
        ('[[reservations]]\ntenant = "t"\ngpus = 8\nduration_h = 1\n', "reservations.0.start_h"),
        ("[checkpoints]\ninterval_s = 60\nfraction = 2\n", "checkpoints.fraction"),
        ("[checkpoints]\nevery = 60\n", "checkpoints"),
    ],
)
def test_a_bad_reservation_or_checkpoint_table_is_one_line_naming_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_scenario(text, tmp_path / "s.toml")
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("policy", ["las", "quota"])
def test_philly_at_load_5_3_starts_the_reserved_gang_on_time(policy: str) -> None:
    """The first 20,000 Philly jobs at load 5.3 (a busy cluster from hour 72 to 162): a 512-GPU gang
    every 24 h from hour 80, in a 512-GPU, 12-hour reservation, starts at each reserved start."""
    require_component(PHILLY_CSV.is_file(), f"the Philly trace at {PHILLY_CSV}")
    cluster = load_cluster("philly")
    jobs = scale_load(read_philly(PHILLY_CSV, 20_000), 5.3)
    daily = Reservation(1, "consortium", 512, 80 * H, 92 * H, model="P40", every_s=24 * H, occurrences=4)
    workload = build_workload(jobs, (ReservationPlan(daily, 512),), None, 1, cluster, "test")
    quotas = proportional_quotas(workload.jobs, cluster.total_gpus)
    options = SimOptions(quota_gpus=quotas, reservations=workload.reservations)
    result = simulate(workload.jobs, cluster, build_policy(policy), options)
    assert [row["delay_s"] for row in start_delays(result, workload.made)] == [0.0] * 4
    assert all(r.end_s is not None for r in result.records)
