"""Summary figures on a hand-computed run."""

from __future__ import annotations

import pytest

from gpucommons.policy.registry import build_policy
from gpucommons.sim.metrics import (
    gpu_hours,
    jain,
    job_rows,
    kind_rows,
    summarize,
    tenant_rows,
    unserved_counts,
    waits_s_by_kind,
)
from gpucommons.sim.runner import simulate
from gpucommons.sim.store import JobRecord, Segment
from tests.conftest import make_cluster, make_job
from tests.sim.test_report_power import TWO_SITE_RESULT

# One 8-GPU node, two whole-node jobs of 100 s submitted together: b's waits 100 s.
RESULT = simulate(
    [make_job(1, 8, tenant="a", duration_s=100.0), make_job(2, 8, tenant="b", duration_s=100.0)],
    make_cluster(("p", 1, 8)),
    build_policy("fifo"),
)


def test_summary_figures() -> None:
    s = summarize(RESULT)
    assert (s["jobs_total"], s["jobs_finished"]) == (2, 2)
    assert s["avg_jct_s"] == pytest.approx(150.0)
    assert s["avg_wait_s"] == pytest.approx(50.0)
    assert s["p99_wait_s"] == pytest.approx(99.0)
    assert s["avg_bounded_slowdown"] == pytest.approx(1.5)
    assert s["makespan_s"] == pytest.approx(200.0)
    assert s["jain_fairness"] == pytest.approx(1.5**2 / (2 * (1.0 + 0.25)))
    assert s["preemptions"] == 0 and s["preemption_loss_gpu_s"] == 0.0
    assert RESULT.busy_gpu_s == pytest.approx(1_600.0)


def test_rows() -> None:
    jobs = job_rows(RESULT)
    assert [(r["job_id"], r["jct_s"], r["wait_s"]) for r in jobs] == [(1, 100.0, 0.0), (2, 200.0, 100.0)]
    tenants = tenant_rows(RESULT)
    assert [(r["tenant"], r["jobs"], r["service"]) for r in tenants] == [("a", 1, 1.0), ("b", 1, 0.5)]
    assert tenants[0]["gpu_hours"] == pytest.approx(800.0 / 3600.0)


@pytest.mark.parametrize(
    ("values", "want"),
    [
        ([], 1.0),
        ([0.7], 1.0),
        ([1.0, 1.0, 1.0], 1.0),
        ([1.0, 0.0], 0.5),
        ([1.0, 0.0, 0.0, 0.0], 0.25),
        ([0.0, 0.0], 1.0),
    ],
)
def test_jain(values: list[float], want: float) -> None:
    assert jain(values) == pytest.approx(want)


# The same two jobs plus tenant c's 16-GPU job, which never fits: services 1, 0.5 and 0.
WITH_UNSERVED = simulate(
    [
        make_job(1, 8, tenant="a", duration_s=100.0),
        make_job(2, 8, tenant="b", duration_s=100.0),
        make_job(3, 16, tenant="c"),
    ],
    make_cluster(("p", 1, 8)),
    build_policy("fifo"),
)


def test_jain_counts_a_tenant_with_no_finished_job_as_zero_service() -> None:
    s = summarize(WITH_UNSERVED)
    assert s["jain_fairness"] == pytest.approx(1.5**2 / (3 * (1.0 + 0.25)))  # 0.6
    assert (s["jobs_never_served"], s["jobs_unfinished"]) == (1, 0)
    unserved = tenant_rows(WITH_UNSERVED)[-1]
    assert unserved == {
        "tenant": "c",
        "jobs": 0,
        "gpu_hours": 0.0,
        "avg_jct_s": None,
        "avg_wait_s": None,
        "service": 0.0,
        "jobs_submitted": 1,
        "kind": "unlisted",
    }


def test_jain_on_the_two_site_run() -> None:
    # u: (3600 + 1200) run / (3600 + 2700) in system; s: (1800 + 3600) / (1800 + 6600); x: 0.
    u, s = 4800 / 6300, 5400 / 8400
    want = (u + s) ** 2 / (3 * (u * u + s * s))
    assert summarize(TWO_SITE_RESULT)["jain_fairness"] == pytest.approx(want)
    assert [(r["tenant"], r["service"]) for r in tenant_rows(TWO_SITE_RESULT)] == [
        ("s", pytest.approx(s)),
        ("u", pytest.approx(u)),
        ("x", 0.0),
    ]


def test_per_kind_figures() -> None:
    rows = {row.pop("kind"): row for row in kind_rows(TWO_SITE_RESULT)}
    # startup waits 0 and 3000 s (p90 by linear interpolation: 0.9 * 3000); university 0 and 1500 s.
    assert rows["startup"] == pytest.approx(
        {
            "tenants": 1,
            "jobs": 2,
            "jobs_finished": 2,
            "gpu_hours": 10.0,  # 4 GPUs x 0.5 h + 8 GPUs x 1 h
            "avg_wait_s": 1500.0,
            "p90_wait_s": 2700.0,
            "gpu_hours_share": 10.0 / (56 / 3),
        }
    )
    assert rows["university"] == pytest.approx(
        {
            "tenants": 1,
            "jobs": 2,
            "jobs_finished": 2,
            "gpu_hours": 8.0 + 2 / 3,  # 8 GPUs x 1 h + 2 GPUs x 1/3 h
            "avg_wait_s": 750.0,
            "p90_wait_s": 1350.0,
            "gpu_hours_share": (26 / 3) / (56 / 3),
        }
    )
    assert rows["unlisted"] == {
        "tenants": 1,
        "jobs": 1,
        "jobs_finished": 0,
        "gpu_hours": 0.0,
        "avg_wait_s": None,
        "p90_wait_s": None,
        "gpu_hours_share": 0.0,
    }
    assert waits_s_by_kind(TWO_SITE_RESULT) == {
        "university": [0.0, 1500.0],
        "startup": [0.0, 3000.0],
        "unlisted": [],
    }


def test_summary_carries_the_new_figures() -> None:
    s = summarize(TWO_SITE_RESULT)
    assert s["gpu_hours_total"] == pytest.approx(56 / 3)
    assert s["gpu_hours_in_window"] == pytest.approx(2.0)  # 0-600 s: 12 GPUs busy for 1/6 h
    assert s["per_kind"]["startup"]["p90_wait_s"] == pytest.approx(2700.0)
    assert set(s["per_kind"]) == {"startup", "university", "unlisted"}
    assert (s["energy_kwh"], s["cost_krw"]) == (pytest.approx(13.974), 1796)
    assert (s["jobs_never_served"], s["jobs_unfinished"]) == (1, 0)


def test_gpu_hours_count_shares_as_their_fraction() -> None:
    segments = [
        Segment(1, "a", "site", "A100", 0.25, 0.0, 3600.0),  # a quarter of one device for an hour
        Segment(2, "a", "site", "A100", 2.0, 1800.0, 5400.0),
    ]
    assert gpu_hours(segments) == pytest.approx(0.25 + 2.0)
    assert gpu_hours(segments, 0.0, 3600.0) == pytest.approx(0.25 + 2.0 * 0.5)
    assert gpu_hours([]) == 0.0


def test_unserved_counts() -> None:
    job = make_job(1)
    records = [
        JobRecord(job),  # never started
        JobRecord(job, first_start_s=5.0),  # preempted, never resumed
        JobRecord(job, first_start_s=5.0, end_s=105.0, run_s=100.0),
    ]
    assert unserved_counts(records) == {"jobs_never_served": 1, "jobs_unfinished": 1}
