"""``gpuc sim`` at the edge: same seed, same bytes; bad input gives one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gpucommons.cli.app import main
from tests.sim.test_traces import PHILLY_CSV

GPUC = Path(sys.executable).with_name("gpuc")
HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"
GOOD_ROWS = "2017-10-09 07:01:55,66.0,1,66.0,vc1\n2017-10-09 07:05:00,600.0,2,1200.0,vc2\n"


def run_gpuc(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(GPUC), *args], capture_output=True, text=True, timeout=300, check=False)


def summary_without_wall(out: Path) -> dict[str, Any]:
    summary = json.loads((out / "summary.json").read_text())
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
