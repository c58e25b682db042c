"""The chaos harness (``benchmarks/chaos.py``): its checks find each kind of defect in made-up records,
its job script records what really ran, and (``slow``) the quick preset against the real service on
SQLite and PostgreSQL finds nothing lost, run twice, held twice, charged wrongly or started on a
drained node."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from benchmarks.chaos_check import (
    COLUMNS,
    RECORD_SCRIPT,
    Drain,
    Harness,
    JobFacts,
    Run,
    Segment,
    check,
    parse_record,
    read_runs,
)

from gpucommons.metering import Rate, charge_krw
from tests.components import require_component, wait_until
from tests.db_fixtures import POSTGRES_ENV

ROOT = Path(__file__).resolve().parents[2]
RATE = Rate(Fraction(360_000))  # 100 won a GPU-second


def job(job_id: int, *segments: tuple[float, float], state: str = "finished", restarts: int = 0) -> JobFacts:
    """A one-GPU job charged exactly (whole won, one rounding) for ``segments``."""
    facts = JobFacts(job_id, state, state, "exit code 0", 1, restarts, 1, RATE)
    billed = Fraction(0)
    for start, end in segments:
        gpu_s = Fraction(round((end - start) * 1_000_000), 1_000_000)
        facts.segments.append(Segment(start, end, 1, gpu_s, charge_krw(RATE, billed, gpu_s)))
        billed += gpu_s
    return facts


def run(job_id: int, start: float, end: float | None, node: str = "h100-1", gpu: int = 0) -> Run:
    return Run(job_id, ((node, gpu),), start, end, "end" if end is not None else "", "")


def counts(
    jobs: list[JobFacts],
    runs: list[Run],
    cancelled: frozenset[int] = frozenset(),
    drains: tuple[Drain, ...] = (),
) -> dict[str, int]:
    harness = Harness(frozenset(j.id for j in jobs), cancelled, drains)
    return check({j.id: j for j in jobs}, runs, harness).counts()


def test_a_clean_history_has_nothing_to_report() -> None:
    jobs = [job(1, (10.0, 11.0)), job(2, (11.5, 12.5)), job(3, (10.0, 10.4), (12.0, 13.0), restarts=1)]
    runs = [run(1, 10.1, 10.9), run(2, 11.6, 12.4), run(3, 10.1, 10.4, gpu=1), run(3, 12.1, 12.9, gpu=1)]
    assert counts(jobs, runs) == dict.fromkeys(COLUMNS, 0)


TWICE = ([job(1, (1.0, 2.0), (3.0, 4.0))], [run(1, 1.1, 1.9), run(1, 3.1, 3.9, gpu=1)])
SAME_GPU = ([job(1, (1.0, 3.0)), job(2, (2.0, 3.0))], [run(1, 1.1, 2.9), run(2, 2.1, 2.9)])


@pytest.mark.parametrize(
    ("jobs", "runs", "column"),
    [
        pytest.param([job(1, state="pending")], [], "lost", id="never-ended"),
        pytest.param([job(1, (1.0, 2.0), state="lost")], [run(1, 1.1, 1.9)], "lost", id="ended-lost"),
        pytest.param([job(1, state="cancelled")], [], "lost", id="cancelled-unasked"),
        pytest.param(*TWICE, "run_twice", id="twice-without-a-requeue"),
        pytest.param(*SAME_GPU, "gpu_double_holds", id="one-gpu-two-jobs"),
        pytest.param([job(1, (1.0, 5.0))], [run(1, 1.1, 1.5)], "charge_mismatches", id="overcharged"),
        pytest.param([job(1, (1.0, 1.2))], [run(1, 1.1, 4.0)], "charge_mismatches", id="undercharged"),
        pytest.param([job(1)], [run(1, 1.1, 1.2)], "charge_mismatches", id="never-metered"),
    ],
)
def test_each_defect_shows_in_its_column(jobs: list[JobFacts], runs: list[Run], column: str) -> None:
    found = counts(jobs, runs)
    assert found == {**dict.fromkeys(COLUMNS, 0), column: 1}


def test_won_must_be_the_quote_of_the_charged_time() -> None:
    wrong = job(1, (1.0, 1.5))
    wrong.segments[0] = Segment(1.0, 1.5, 1, Fraction(1, 2), 49)  # the quote of 0.5 GPU-s is 50 won
    assert counts([wrong], [run(1, 1.05, 1.45)])["charge_mismatches"] == 1


def test_a_run_stopped_while_its_process_started_may_be_charged_its_start_up_only() -> None:
    """Cancelled before its command recorded a start: charged from the launch (the GPUs were held),
    but only up to ``UNSEEN_START_S``; a job that finished has no such excuse."""
    cancelled = frozenset({1})
    assert counts([job(1, (1.0, 2.5), state="cancelled")], [], cancelled)["charge_mismatches"] == 0
    assert counts([job(1, (1.0, 9.0), state="cancelled")], [], cancelled)["charge_mismatches"] == 1
    preempted = job(2, (1.0, 2.5), (3.0, 4.0), restarts=1)
    assert counts([preempted], [run(2, 3.1, 3.9)])["charge_mismatches"] == 0
    assert counts([job(3, (1.0, 2.5), (3.0, 4.0))], [run(3, 3.1, 3.9)])["charge_mismatches"] == 1


def test_a_start_on_a_drained_node_is_found_once_the_service_must_know() -> None:
    drains = (Drain("h100-1", 5.0, 20.0),)
    late = [job(1, (9.0, 10.0))]
    assert counts(late, [run(1, 9.1, 9.9)], drains=drains)["drained_starts"] == 1
    settling = [job(1, (6.0, 7.0))]  # within a step and a launch of the drain: it may not have seen it
    assert counts(settling, [run(1, 6.1, 6.9)], drains=drains)["drained_starts"] == 0
    elsewhere = [job(1, (9.0, 10.0))]
    assert counts(elsewhere, [run(1, 9.1, 9.9, node="h100-2")], drains=drains)["drained_starts"] == 0
    after = [job(1, (21.0, 22.0))]
    assert counts(after, [run(1, 21.1, 21.9)], drains=drains)["drained_starts"] == 0


def test_a_cancel_nobody_asked_for_is_lost_but_an_asked_one_is_not() -> None:
    jobs = [job(1, state="cancelled")]
    assert counts(jobs, [], cancelled=frozenset({1}))["lost"] == 0


def _record(tmp_path: Path, sleep_s: str, stop_s: str) -> subprocess.Popen[bytes]:
    env = {
        "PATH": "/usr/bin:/bin",
        "GPUC_JOB_ID": "7",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "GPUC_GPUS": "h100-1:0,1",
    }
    command = ["sh", "-c", RECORD_SCRIPT, "chaos", str(tmp_path), sleep_s, stop_s]
    return subprocess.Popen(command, env=env, start_new_session=True)


def test_the_job_script_records_a_run_and_its_gpus(tmp_path: Path) -> None:
    assert _record(tmp_path, "0.01", "0").wait(30) == 0
    (only,) = read_runs(tmp_path)
    assert (only.job_id, only.gpus, only.how) == (7, (("h100-1", 0), ("h100-1", 1)), "end")
    assert only.end_s is not None and only.end_s >= only.start_s


def test_the_job_script_holds_its_gpus_until_it_has_stopped(tmp_path: Path) -> None:
    proc = _record(tmp_path, "30", "0.2")
    wait_until(lambda: any(tmp_path.iterdir()), 30, "the job script never wrote its start line", poll_s=0.02)
    os.killpg(proc.pid, signal.SIGTERM)  # as the backend stops a job: the whole group
    assert proc.wait(30) == 143
    (path,) = tmp_path.iterdir()
    lines = path.read_text().splitlines()
    assert [line.split()[3] for line in lines] == ["start", "term", "stopped"]
    stopped = parse_record(path, path.read_text())
    assert stopped is not None and stopped.how == "stopped"
    assert stopped.end_s is not None and stopped.end_s - float(lines[1].split()[2]) >= 0.2


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def chaos_db(request: pytest.FixtureRequest) -> list[str]:
    """The ``--db`` arguments of one database, as ``db_url`` chooses them."""
    if request.param == "sqlite":
        return ["--db", "sqlite"]
    url = os.environ.get(POSTGRES_ENV)
    require_component(bool(url), f"PostgreSQL ({POSTGRES_ENV})")
    assert url is not None
    return ["--db", "postgres", url]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_chaos_loses_nothing_and_runs_nothing_twice(chaos_db: list[str], tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "chaos.py"), "--quick", "--seed", "7", *chaos_db]
    done = subprocess.run(
        [*command, "--summary-json", str(summary)], cwd=ROOT, capture_output=True, text=True, timeout=880
    )
    assert summary.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    (result,) = json.loads(summary.read_text())
    assert result["totals"]["jobs"] == 300 and result["totals"]["kills_server"] >= 1, result["totals"]
    assert result["counts"] == dict.fromkeys(COLUMNS, 0), "\n".join(result["evidence"][:30])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
