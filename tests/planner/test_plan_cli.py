"""``gpuc plan`` end to end on a small call: the comparison, the size search and its check, the cache,
the same report from the same command, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpucommons.planner.runs import RunCache, RunSpec, run_all, spec_for
from gpucommons.planner.scenario import load_plan_scenario
from gpucommons.planner.sizing import SizeSearch, search
from gpucommons.planner.targets import parse_target
from tests.cli.test_sim_cli import invoke

SMALL = Path(__file__).parent / "small.toml"
TARGETS = ["p90-wait:academia<=2h", "p90-wait:*<=4h"]


def test_compare_writes_the_report_and_the_commons_serves_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, text = invoke(
        ["plan", "compare", "--scenario", str(SMALL), "--out", str(out), "--workers", "2"], capsys
    )
    assert code == 0, text
    assert "GPU-hours delivered in the period" in text and "idle reserved GPU-hours" in text
    for name in ("report.md", "summary.csv", "wait_cdf.png", "utilization.png", "gpu_hours.png"):
        assert (out / name).stat().st_size > 0
    static = json.loads((out / "runs/static-8s-seed7/results.json").read_text())
    commons = json.loads((out / "runs/commons-8s-seed7/results.json").read_text())
    assert (out / "runs/commons-8s-seed7/results.csv").read_text().startswith("kind,")
    # Static partitions leave the unfunded proposals unserved and reserved GPUs idle; the commons lends them.
    unfunded_jobs = static["jobs_total"] - static["jobs_finished"]
    assert static["jobs_never_served"] == unfunded_jobs > 0 and commons["jobs_never_served"] == 0
    assert commons["idle_reserved_gpu_hours"] < static["idle_reserved_gpu_hours"]
    assert commons["gpu_hours_in_window"] > static["gpu_hours_in_window"]
    assert static["idle_reserved_gpu_hours"] <= static["reserved_gpu_hours"]
    # The same command again is served from the cache and writes the same report.
    first = (out / "report.md").read_bytes()
    code, text = invoke(
        ["plan", "compare", "--scenario", str(SMALL), "--out", str(out), "--workers", "1"], capsys
    )
    assert code == 0 and (out / "report.md").read_bytes() == first


def test_the_cache_recomputes_only_what_changed(tmp_path: Path) -> None:
    plan = load_plan_scenario(str(SMALL))
    cache = RunCache(tmp_path / "cache")
    seen: list[tuple[str, bool]] = []

    def note(run: RunSpec, cached: bool) -> None:
        seen.append((run.label, cached))

    first = run_all([spec_for(plan, "commons", 8, 7)], cache, 1, note)
    again = run_all([spec_for(plan, "commons", 8, 7), spec_for(plan, "commons", 8, 8)], cache, 2, note)
    assert seen == [("commons-8s-seed7", False), ("commons-8s-seed7", True), ("commons-8s-seed8", False)]
    assert again[0] == first[0] and again[1]["seed"] == 8
    fresh = run_all([spec_for(plan, "commons", 8, 7)], RunCache(None), 1)[0]
    assert {k: v for k, v in fresh.items() if k != "wall_s"} == {
        k: v for k, v in first[0].items() if k != "wall_s"
    }


def test_size_finds_the_smallest_pool_and_checks_one_below(tmp_path: Path) -> None:
    plan = load_plan_scenario(str(SMALL))
    targets = [parse_target(t, plan.groups()) for t in TARGETS]
    answer = search(
        SizeSearch(plan, targets, "commons", 7, max_servers=32, workers=2), RunCache(tmp_path / "c")
    )
    assert all(v.met for v in answer.verdicts)
    assert all(not met for size, met in answer.tried.items() if size < answer.servers)
    (at, verdicts_at), (below, verdicts_below) = answer.check
    assert (at, below) == (answer.servers, answer.servers - 1)
    assert all(v.met for v in verdicts_at) and not all(v.met for v in verdicts_below)
    # Fewer tries than a grid over the range.
    assert len(answer.tried) < 32 - 7


def test_size_command_reports_power_money_and_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["plan", "size", "--scenario", str(SMALL), "--out", str(tmp_path), "--max-servers", "32"]
    code, text = invoke([*args, *(f"--target={t}" for t in TARGETS), "--price", "H200=1"], capsys)
    assert code == 0, text
    assert "MW facility" in text and "won a year" in text and "t CO2 a year" in text
    assert "check (re-run)" in text and ": met" in text and ": missed" in text
    assert (tmp_path / "frontier.png").stat().st_size > 0 and (tmp_path / "report.md").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "compare", "--scenario", "korea-2027"], "unknown scenario 'korea-2027'"),
        (["plan", "compare", "--scenario", str(SMALL), "--policies", "greedy"], "unknown policy 'greedy'"),
        (["plan", "size", "--scenario", str(SMALL), "--target", "p90:*<=1h"], "is not METRIC:GROUP<=VALUE"),
        (
            ["plan", "size", "--scenario", str(SMALL), "--target", "p90-wait:*<=1s", "--max-servers", "9"],
            "no size from 7 to 9 servers meets the targets",
        ),
        (
            ["plan", "size", "--scenario", str(SMALL), "--target", "avg-wait:*<=1h", "--price", "H200"],
            "--price",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = invoke([*args, "--out", str(tmp_path)], capsys)
    assert code == 2 and message in text
    assert text.strip().count("\n") == 0 and "Traceback" not in text


def test_a_malformed_scenario_file_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(SMALL.read_text().replace("period_days = 2", 'period_days = "two"'))
    code, text = invoke(["plan", "compare", "--scenario", str(broken), "--out", str(tmp_path)], capsys)
    assert code == 2 and "period_days" in text and text.strip().count("\n") == 0
