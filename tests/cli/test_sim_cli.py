"""``gpuc sim`` at the edge: same seed, same bytes; bad input gives one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gpucommons.cli.app import main
from tests.components import require_component
from tests.sim.test_traces import PHILLY_CSV

GPUC = Path(sys.executable).with_name("gpuc")
HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"
GOOD_ROWS = "2017-10-09 07:01:55,66.0,1,66.0,vc1\n2017-10-09 07:05:00,600.0,2,1200.0,vc2\n"


def run_gpuc(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(GPUC), *args], capture_output=True, text=True, timeout=300, check=False)


def summary_without_wall(out: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    summary.pop("sim_wall_s")
    return summary


def summary_bytes_without_wall(out: Path) -> bytes:
    lines = (out / "summary.json").read_bytes().splitlines(keepends=True)
    return b"".join(line for line in lines if b'"sim_wall_s"' not in line)


# -- determinism -----------------------------------------------------------------------------------
@pytest.mark.skipif(not GPUC.is_file(), reason=f"{GPUC} is not installed")
@pytest.mark.skipif(not PHILLY_CSV.is_file(), reason=f"Philly trace not found at {PHILLY_CSV}")
@pytest.mark.parametrize(
    ("policy", "cluster", "limit"),
    [
        ("fairshare", "philly", 3000),  # the trace's own cluster
        ("las", "demo", 1000),  # 24 GPUs: long queues and hundreds of preemptions
        ("quota", "demo", 1000),  # borrowing and reclaim
    ],
)
def test_same_seed_gives_byte_identical_outputs(
    tmp_path: Path, policy: str, cluster: str, limit: int
) -> None:
    outs = [tmp_path / "one", tmp_path / "two"]
    for out in outs:
        args = [
            "sim",
            "--trace",
            "philly",
            "--cluster",
            cluster,
            "--policy",
            policy,
            "--limit-jobs",
            str(limit),
        ]
        done = run_gpuc([*args, "--seed", "11", "--quiet", "--out", str(out)])
        assert done.returncode == 0, done.stderr
    assert summary_without_wall(outs[0])["jobs_finished"] == limit
    assert summary_bytes_without_wall(outs[0]) == summary_bytes_without_wall(outs[1])
    for name in ("jobs.csv", "tenants.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


@pytest.mark.skipif(not GPUC.is_file(), reason=f"{GPUC} is not installed")
def test_synthetic_trace_follows_the_seed(tmp_path: Path) -> None:
    def synthetic(seed: int, out: Path) -> dict[str, Any]:
        args = [
            "sim",
            "--trace",
            "synthetic",
            "--synthetic-jobs",
            "2000",
            "--cluster",
            "demo",
            "--policy",
            "backfill",
        ]
        done = run_gpuc([*args, "--seed", str(seed), "--quiet", "--out", str(out)])
        assert done.returncode == 0, done.stderr
        return summary_without_wall(out)

    first, again, other = (
        synthetic(5, tmp_path / "a"),
        synthetic(5, tmp_path / "b"),
        synthetic(6, tmp_path / "c"),
    )
    assert first == again
    assert summary_bytes_without_wall(tmp_path / "a") == summary_bytes_without_wall(tmp_path / "b")
    assert (tmp_path / "a" / "jobs.csv").read_bytes() == (tmp_path / "b" / "jobs.csv").read_bytes()
    assert (tmp_path / "a" / "jobs.csv").read_bytes() != (tmp_path / "c" / "jobs.csv").read_bytes()
    assert first["avg_jct_s"] != other["avg_jct_s"]


# -- bad input -------------------------------------------------------------------------------------
def invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``gpuc`` in-process through its real entry point; returns (exit code, stdout + stderr)."""
    saved = sys.argv
    sys.argv = ["gpuc", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return code, captured.out + captured.err


CLUSTER_OK = """
name = "tiny"
[[sites]]
name = "here"
[[pools]]
name = "a100"
site = "here"
model = "A100"
nodes = {nodes}
gpus_per_node = {gpus}
"""

SITE_LINE = 'name = "here"\n'


def cluster_with(site_extra: str) -> str:
    """The good test cluster with extra keys on its one site (power cap, cap windows)."""
    return CLUSTER_OK.format(nodes=2, gpus=8).replace(SITE_LINE, SITE_LINE + site_extra + "\n", 1)


def windows(*specs: str) -> str:
    return "power_cap_mw = 1.0\ncap_windows = [" + ", ".join(f"{{ {w} }}" for w in specs) + "]"


WEEKDAYS = 'days = "mon-fri", start = "14:00", end = "18:00", cap_mw = 0.5'
TENANTS_HEADER = "tenant,kind,awarded_gpus,funded,sovereign\n"
SCENARIO = """
cluster = "demo"
tenants = "tenants.csv"
trace = "good.csv"
policy = "quota"
borrowing = false
power_cap_mw = 0.05
unlisted = "error"
[power_model]
device_utilization = 0.7
"""

FILES: dict[str, str | bytes] = {
    "good.csv": HEADER + GOOD_ROWS,
    "bad-time.csv": HEADER + "not-a-time,66.0,1,66.0,vc1\n",
    "negative.csv": HEADER + "2017-10-09 07:01:55,-66.0,1,66.0,vc1\n",
    "no-cluster-column.csv": "timestamp,duration,num_gpus,gpu_time\n2017-10-09 07:01:55,66.0,1,66.0\n",
    "binary.csv": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe",
    "negative-gpus.toml": CLUSTER_OK.format(nodes=2, gpus=-8),
    "negative-nodes.toml": CLUSTER_OK.format(nodes=-2, gpus=8),
    "zero-nodes.toml": CLUSTER_OK.format(nodes=0, gpus=8),
    "unknown-site.toml": CLUSTER_OK.format(nodes=2, gpus=8).replace('site = "here"', 'site = "nowhere"'),
    "unknown-model.toml": CLUSTER_OK.format(nodes=2, gpus=8).replace('"A100"', '"X9"'),
    "extra-key.toml": CLUSTER_OK.format(nodes=2, gpus=8) + "colour = 'blue'\n",
    "not-toml.toml": "this is [not toml\n",
    "binary.toml": b'name = "\xff\xfe"\n',
    "cap-zero.toml": cluster_with("power_cap_mw = 0"),
    "window-cap-zero.toml": cluster_with(windows(WEEKDAYS.replace("cap_mw = 0.5", "cap_mw = 0"))),
    "overlapping-windows.toml": cluster_with(
        windows(WEEKDAYS, 'days = "fri", start = "17:00", end = "20:00", cap_mw = 0.8')
    ),
    "bad-window-days.toml": cluster_with(windows(WEEKDAYS.replace("mon-fri", "weekdays"))),
    "bad-window-time.toml": cluster_with(windows(WEEKDAYS.replace('"14:00"', '"2pm"'))),
    "backwards-window.toml": cluster_with(windows(WEEKDAYS.replace('"18:00"', '"13:00"'))),
    "tenants.csv": TENANTS_HEADER + "vc1,university,8,true,false\nvc2,startup,4,true,true\n",
    "tenants-vc1.csv": TENANTS_HEADER + "vc1,university,8,true,false\n",
    "tenants-no-award.csv": "tenant,kind\nvc1,university\nvc2,startup\n",
    "tenants-negative.csv": TENANTS_HEADER + "vc1,university,-8,true,false\nvc2,startup,4,true,true\n",
    "tenants-b200.csv": "tenant,kind,awarded_gpus,model\nvc1,university,8,B200\nvc2,startup,4,\n",
    "scenario.toml": SCENARIO,
    "scenario-vc1.toml": SCENARIO.replace('"tenants.csv"', '"tenants-vc1.csv"'),
    "scenario-bad-key.toml": SCENARIO + 'colour = "blue"\n',
}

ERROR_CASES = [
    ("unknown policy", ["--policy", "nope"], "nope"),
    ("unknown placer", ["--placement", "nowhere-fit"], "nowhere-fit"),
    ("unknown trace", ["--trace", "nosuchtrace"], "nosuchtrace"),
    ("missing trace file", ["--trace", "{tmp}/absent.csv"], "absent.csv"),
    ("bad timestamp", ["--trace", "{tmp}/bad-time.csv"], "bad-time.csv:2"),
    ("negative duration", ["--trace", "{tmp}/negative.csv"], "negative.csv:2"),
    ("missing column", ["--trace", "{tmp}/no-cluster-column.csv"], "cluster"),
    ("binary trace", ["--trace", "{tmp}/binary.csv"], "binary.csv"),
    ("negative GPU count", ["--cluster", "{tmp}/negative-gpus.toml"], "gpus_per_node"),
    ("negative node count", ["--cluster", "{tmp}/negative-nodes.toml"], "nodes"),
    ("unknown site", ["--cluster", "{tmp}/unknown-site.toml"], "nowhere"),
    ("unknown model", ["--cluster", "{tmp}/unknown-model.toml"], "X9"),
    ("unknown key", ["--cluster", "{tmp}/extra-key.toml"], "colour"),
    ("not TOML", ["--cluster", "{tmp}/not-toml.toml"], "not-toml.toml"),
    ("binary cluster file", ["--cluster", "{tmp}/binary.toml"], "binary.toml"),
    ("missing cluster file", ["--cluster", "{tmp}/absent.toml"], "absent.toml"),
    ("unknown preset", ["--cluster", "no-such-cluster"], "no-such-cluster"),
    ("load zero", ["--load", "0"], "--load"),
    ("load negative", ["--load", "-2"], "--load"),
    ("load not a number", ["--load", "nan"], "--load"),
    ("limit zero", ["--limit-jobs", "0"], "--limit-jobs"),
    (
        "synthetic on a cluster without GPUs",
        ["--trace", "synthetic", "--cluster", "{tmp}/zero-nodes.toml"],
        "GPUs",
    ),
    (
        "synthetic with no jobs",
        ["--trace", "synthetic", "--synthetic-jobs", "0", "--cluster", "demo"],
        "jobs",
    ),
    # the commons' inputs
    ("site cap zero", ["--cluster", "{tmp}/cap-zero.toml"], "power_cap_mw"),
    ("window cap zero", ["--cluster", "{tmp}/window-cap-zero.toml"], "cap_mw"),
    ("overlapping windows", ["--cluster", "{tmp}/overlapping-windows.toml"], "overlap"),
    ("malformed window days", ["--cluster", "{tmp}/bad-window-days.toml"], "days"),
    ("malformed window time", ["--cluster", "{tmp}/bad-window-time.toml"], "start"),
    ("window ending before it starts", ["--cluster", "{tmp}/backwards-window.toml"], "end must be after"),
    ("tenants missing a column", ["--tenants", "{tmp}/tenants-no-award.csv"], "awarded_gpus"),
    ("negative award", ["--tenants", "{tmp}/tenants-negative.csv"], "tenants-negative.csv:2: awarded_gpus"),
    ("award for a model not in the cluster", ["--tenants", "{tmp}/tenants-b200.csv"], "B200"),
    ("missing tenants file", ["--tenants", "{tmp}/absent-tenants.csv"], "absent-tenants.csv"),
    (
        "unknown tenant",
        ["--tenants", "{tmp}/tenants-vc1.csv"],
        "1 tenant(s) of the trace are not listed: vc2",
    ),
    ("unknown tenant via a scenario", ["--scenario", "{tmp}/scenario-vc1.toml"], "vc2"),
    ("power cap option zero", ["--power-cap-mw", "0"], "--power-cap-mw"),
    ("power cap option negative", ["--power-cap-mw", "-3"], "--power-cap-mw"),
    ("power cap option not finite", ["--power-cap-mw", "inf"], "--power-cap-mw"),
    ("borrowing neither on nor off", ["--borrowing", "maybe"], "--borrowing"),
    ("unlisted unknown", ["--unlisted", "ignore"], "--unlisted"),
    ("scenario unknown key", ["--scenario", "{tmp}/scenario-bad-key.toml"], "colour"),
    ("missing scenario file", ["--scenario", "{tmp}/absent-scenario.toml"], "absent-scenario.toml"),
]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name, content in FILES.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return tmp_path


def sim_args(args: list[str], tmp: Path) -> list[str]:
    base = {"--trace": f"{tmp}/good.csv", "--cluster": "demo"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    merged = {**base, **{k: v.format(tmp=tmp) for k, v in given.items()}}
    flat = [item for pair in merged.items() for item in pair]
    return ["sim", *flat, "--quiet", "--out", str(tmp / "out")]


@pytest.mark.parametrize(("name", "args", "want"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_bad_input_is_one_line_and_exit_2(
    name: str, args: list[str], want: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = invoke(sim_args(args, files), capsys)
    assert code == 2, output
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert want in lines[0]


def test_good_small_trace_runs(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = invoke(sim_args([], files), capsys)
    assert code == 0, output
    summary = json.loads((files / "out" / "summary.json").read_text())
    assert summary["jobs_finished"] == summary["jobs_total"] == 2


@pytest.mark.parametrize(
    ("args", "want"), [(["--load", "abc"], "--load"), (["--limit-jobs", "x"], "--limit-jobs")]
)
def test_malformed_option_is_a_usage_error(
    args: list[str], want: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = invoke(sim_args(args, files), capsys)
    assert code == 2
    assert "Traceback" not in output and want in output


@pytest.mark.skipif(not GPUC.is_file(), reason=f"{GPUC} is not installed")
def test_installed_command_reports_errors_without_traceback(files: Path) -> None:
    done = run_gpuc(sim_args(["--policy", "nope"], files))
    assert done.returncode == 2
    assert done.stderr.startswith("error:") and "nope" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# -- the commons' inputs ---------------------------------------------------------------------------
def summary_of(out: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


def test_tenants_file_run(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = invoke(sim_args(["--tenants", "{tmp}/tenants.csv", "--policy", "quota"], files), capsys)
    assert code == 0, output
    assert summary_of(files / "out")["jobs_finished"] == 2
    kinds = (files / "out" / "kinds.csv").read_text()
    assert "\nuniversity," in kinds and "\nstartup," in kinds  # the file's kinds, not "unlisted"


def test_unlisted_best_effort_runs_the_unknown_tenant_without_an_award(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--tenants", "{tmp}/tenants-vc1.csv", "--unlisted", "best-effort"]
    code, output = invoke(sim_args(args, files), capsys)
    assert code == 0, output
    summary = summary_of(files / "out")
    assert summary["jobs_total"] == 2
    assert summary["jobs_finished"] == 2  # vc2 holds no award: best-effort, it borrows idle capacity
    code, output = invoke(sim_args([*args, "--borrowing", "off"], files), capsys)
    assert code == 0, output
    summary = summary_of(files / "out")
    assert (summary["jobs_finished"], summary["jobs_never_served"]) == (1, 1)  # no borrowing: never served


def test_power_cap_option_overrides_the_clusters_cap(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 1 kW on every site: below what one busy node of the demo cluster draws, so nothing can start.
    code, output = invoke(sim_args(["--power-cap-mw", "0.001"], files), capsys)
    assert code == 0, output
    summary = summary_of(files / "out")
    assert summary["jobs_total"] == 2 and summary["jobs_finished"] == 0
    # 50 kW: room for both jobs, and the peak stays under it.
    code, output = invoke(sim_args(["--power-cap-mw", "0.05"], files), capsys)
    assert code == 0, output
    summary = summary_of(files / "out")
    assert summary["jobs_finished"] == 2 and 0 < summary["peak_site_power_mw"]["local"] <= 0.05


def test_switches_are_accepted(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for flags in (["--borrowing", "off", "--power-preempt"], ["--borrowing", "on", "--no-power-preempt"]):
        args = [*sim_args(["--tenants", "{tmp}/tenants.csv", "--policy", "quota"], files), *flags]
        code, output = invoke(args, capsys)
        assert code == 0, output
        assert summary_of(files / "out")["jobs_finished"] == 2


def test_scenario_file_run_and_command_line_overrides(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = files / "out"
    code, output = invoke(
        ["sim", "--scenario", str(files / "scenario.toml"), "--quiet", "--out", str(out)], capsys
    )
    assert code == 0, output
    summary = summary_of(out)
    assert (summary["policy"], summary["cluster"], summary["trace"]) == (
        "quota",
        "demo",
        str(files / "good.csv"),
    )
    assert summary["jobs_finished"] == 2
    args = ["sim", "--scenario", str(files / "scenario.toml"), "--policy", "fifo", "--load", "2"]
    code, output = invoke([*args, "--quiet", "--out", str(out)], capsys)
    assert code == 0, output
    summary = summary_of(out)
    assert (summary["policy"], summary["load"], summary["cluster"]) == ("fifo", 2.0, "demo")


def test_shipped_philly_commons_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_component(PHILLY_CSV.is_file(), f"the Philly trace at {PHILLY_CSV}")
    args = ["sim", "--scenario", "philly-commons", "--limit-jobs", "500"]
    code, output = invoke([*args, "--quiet", "--out", str(tmp_path)], capsys)
    assert code == 0, output
    summary = summary_of(tmp_path)
    assert (summary["policy"], summary["cluster"], summary["jobs_total"]) == ("quota", "philly", 500)
    kinds = (tmp_path / "kinds.csv").read_text()
    assert "unlisted" not in kinds  # every virtual cluster of the trace is in the tenants file


# -- reports ---------------------------------------------------------------------------------------
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plots_and_report_files(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = invoke([*sim_args([], files), "--plots"], capsys)
    assert code == 0, output
    out = files / "out"
    for name in ("power.png", "wait_cdf.png"):
        data = (out / name).read_bytes()
        assert len(data) > len(PNG_SIGNATURE) and data.startswith(PNG_SIGNATURE), name
    power = (out / "power.csv").read_text().splitlines()
    assert power[0] == "t_s,site,power_mw"
    assert power[1].split(",")[1] == "local" and len(power) >= 3  # the demo cluster's one site
    kinds = (out / "kinds.csv").read_text().splitlines()
    assert kinds[0] == "kind,tenants,jobs,jobs_finished,gpu_hours,avg_wait_s,p90_wait_s,gpu_hours_share"
    assert kinds[1].startswith("unlisted,2,2,2,")  # the trace's two tenants have no kind
    summary = json.loads((out / "summary.json").read_text())
    assert summary["jobs_never_served"] == 0 and summary["energy_kwh"] > 0
    assert set(summary["peak_site_power_mw"]) == {"local"}
    assert summary["per_kind"]["unlisted"]["gpu_hours_share"] == 1.0


def test_without_plots_no_png_is_written(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = invoke(sim_args([], files), capsys)
    assert code == 0, output
    assert not list((files / "out").glob("*.png"))
    assert (files / "out" / "power.csv").is_file() and (files / "out" / "kinds.csv").is_file()


def test_plots_without_matplotlib_is_one_line_and_exit_2(
    files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("matplotlib", "matplotlib.backends", "matplotlib.backends.backend_agg", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)  # ``import`` of a None entry raises ImportError
    code, output = invoke([*sim_args([], files), "--plots"], capsys)
    assert code == 2, output
    assert output.strip().splitlines() == ["error: --plots needs matplotlib: pip install 'gpucommons[plots]'"]
    assert not (files / "out" / "summary.json").exists()  # refused before the replay, not after
