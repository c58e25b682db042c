"""Shared builders for the scheduling-core and simulator tests, plus the hypothesis profile.

Builders take the few fields a test cares about and default the rest, so a table row reads as the case
it describes: ``make_job(3, gpus=2, tenant="b", estimate_s=50)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site
from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot
from tests.components import CI

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("default")

REPO_ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["tests.slurm_cluster"]  # the session's Slurm test cluster fixture, ``slurm_env``


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under ``CI=true`` a skipped test fails the run, whatever skipped it (a ``skipif`` on a missing
    trace, a fixture without its service): CI runs every test or says why it could not."""
    if not CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = len(reporter.stats.get("skipped", []))
    if skipped and session.exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"CI=true: {skipped} test(s) skipped; every test must run in CI", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def make_cluster(*pools: tuple[str, int, int] | tuple[str, int, int, str], name: str = "test") -> Cluster:
    """One site; each pool given as ``(name, nodes, gpus_per_node[, model])`` (model defaults to A100)."""
    built = []
    for spec in pools:
        model = spec[3] if len(spec) == 4 else "A100"
        built.append(Pool(spec[0], "site", CATALOG[model], spec[1], spec[2]))
    return Cluster.build(name, (Site("site"),), tuple(built))


def make_job(
    job_id: int,
    gpus: int = 1,
    *,
    tenant: str = "a",
    submit_s: float = 0.0,
    duration_s: float = 100.0,
    estimate_s: float | None = None,
    gpus_per_node: int | None = None,
    models: Iterable[str] = (),
    preemptible: bool = True,
) -> Job:
    return Job(
        id=job_id,
        tenant=tenant,
        gpus=gpus,
        submit_s=submit_s,
        duration_s=duration_s,
        estimate_s=duration_s if estimate_s is None else estimate_s,
        gpus_per_node=gpus_per_node,
        accepted_models=frozenset(models),
        preemptible=preemptible,
    )


def pending(job: Job, attained_gpu_s: float = 0.0) -> PendingJob:
    return PendingJob(job, attained_gpu_s=attained_gpu_s, queued_since_s=job.submit_s)


def running(
    job: Job,
    node_gpus: Sequence[tuple[int, Sequence[int]]],
    *,
    started_s: float = 0.0,
    attained_gpu_s: float = 0.0,
    borrowing: bool = False,
) -> RunningJob:
    placement = Placement(tuple((node, tuple(gpus)) for node, gpus in node_gpus))
    return RunningJob(job, placement, started_s, attained_gpu_s, borrowing)


def make_snapshot(
    cluster: Cluster,
    waiting: Iterable[Job | PendingJob] = (),
    busy: Iterable[RunningJob] = (),
    *,
    usage: Mapping[str, float] | None = None,
    quotas: Mapping[str, int] | None = None,
) -> Snapshot:
    """A snapshot whose capacity has the running jobs' GPUs taken and whose queue is in (submit, id)
    order, as the Snapshot contract promises."""
    capacity = Capacity(cluster)
    running_by_id: dict[int, RunningJob] = {}
    tenant_gpus: dict[str, int] = {}
    for r in busy:
        for node, gpus in r.placement.node_gpus:
            capacity.allocate_indices(node, gpus)
        running_by_id[r.job.id] = r
        tenant_gpus[r.job.tenant] = tenant_gpus.get(r.job.tenant, 0) + r.job.gpus
    queue = [w if isinstance(w, PendingJob) else pending(w) for w in waiting]
    queue.sort(key=lambda p: (p.job.submit_s, p.job.id))
    return Snapshot(
        cluster=cluster,
        capacity=capacity,
        pending=queue,
        running=running_by_id,
        tenant_usage_gpu_s=dict(usage or {}),
        tenant_running_gpus=tenant_gpus,
        quota_gpus=dict(quotas or {}),
    )


def free_state(capacity: Capacity) -> tuple[tuple[int, ...], ...]:
    """Free GPU indices of every node, in node order."""
    return tuple(capacity.free_indices(n.index) for n in capacity.cluster.nodes)


def most_overlapping(spans: Iterable[tuple[float, float]]) -> int:
    """The most of the ``(start, end)`` spans that hold at one instant; one ending when another starts
    does not overlap it."""
    edges = sorted((t, step) for start, end in spans for t, step in ((start, 1), (end, -1)))
    overlap = most = 0
    for _, step in edges:
        overlap += step
        most = max(most, overlap)
    return most
