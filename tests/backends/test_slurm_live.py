"""SlurmBackend and the inventory import against a real Slurm 22.05 cluster with fake GPU nodes.

The cluster is the session's ``slurm_env`` (``tests/slurm_cluster.py``): the environment's when
``SLURM_CONF`` is set (``scripts/test.sh`` exports it), else one started for this run and stopped after.
Each test pins its jobs to its own nodes so tests never wait for each other's GPUs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpucommons.backends.slurm import SlurmBackend
from gpucommons.backends.slurm_cli import SlurmCli
from gpucommons.backends.slurm_inventory import import_slurm_inventory
from gpucommons.backends.slurm_submit import SlurmConfig
from gpucommons.cli.app import app
from gpucommons.clusterfile import load_cluster
from gpucommons.domain.job import Placement
from gpucommons.engine.ports import RESTART_COUNT_ENV, BackendEvent, LaunchSpec
from tests.backends.contract import CHECKS, ContractEnv
from tests.components import wait_until
from tests.job_release import Release, releases
from tests.slurm_cluster import job_info, slurm

__all__ = ["releases"]

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]

TERMINAL = {"finished", "failed", "cancelled", "timeout", "lost"}
NODE_INDEX = {"h100-1": 0, "h100-2": 1, "h100-3": 2, "h100-4": 3, "a100-1": 4, "a100-2": 5}


@pytest.fixture
def config(slurm_env: dict[str, str]) -> SlurmConfig:
    return SlurmConfig(slurm_conf=slurm_env["SLURM_CONF"], command_timeout_s=20)


def make_spec(
    tmp: Path, job_id: int, command: Sequence[str], node: str, gpus: int = 1, **kw: object
) -> LaunchSpec:
    work = tmp / f"job-{job_id}"
    placement = Placement(((NODE_INDEX[node], tuple(range(gpus))),))
    fields: dict[str, object] = {
        "job_id": job_id, "command": tuple(command), "placement": placement, "node_names": (node,),
        "gpu_model": node.split("-")[0].upper(), "time_limit_s": 600.0, "workdir": work,
        "stdout_path": work / "out.log", "stderr_path": work / "err.log", "env": {}, "account": "testaccount",
    }  # fmt: skip
    return LaunchSpec(**(fields | kw))  # type: ignore[arg-type]


def collect(
    backend: SlurmBackend, done: Callable[[list[BackendEvent]], bool], wait_s: float = 60
) -> list[BackendEvent]:
    """Poll until ``done(events so far)``; fail after ``wait_s``."""
    events: list[BackendEvent] = []

    def reached() -> bool:
        events.extend(backend.poll())
        return done(events)

    wait_until(reached, wait_s, lambda: f"condition not reached; events: {events}", poll_s=0.2)
    return events


def kinds(events: list[BackendEvent], job_id: int) -> list[str]:
    return [e.kind for e in events if e.job_id == job_id]


def test_job_runs_on_the_chosen_node_with_its_gpus(
    config: SlurmConfig, slurm_env: dict[str, str], tmp_path: Path
) -> None:
    backend = SlurmBackend(config)
    command = ["sh", "-c", 'echo "$SLURMD_NODENAME $CUDA_VISIBLE_DEVICES $GREETING"']
    spec = make_spec(tmp_path, 101, command, "h100-3", gpus=3, env={"GREETING": "hello, world"})
    ref = backend.launch(spec)
    events = collect(backend, lambda ev: "finished" in kinds(ev, 101))
    assert kinds(events, 101) == ["started", "finished"]
    started, finished = (e for e in events if e.job_id == 101)
    assert (finished.exit_code, finished.backend_ref) == (0, ref)
    assert spec.stdout_path.read_text().split(maxsplit=2) == ["h100-3", "0,1,2", "hello, world\n"]
    info = job_info(slurm_env, ref)
    assert (info["JobState"], info["NodeList"], info["JobName"]) == ("COMPLETED", "h100-3", "gpuc-101")
    assert (started.at_s, finished.at_s) == (float(info["StartTime"]), float(info["EndTime"]))


def test_failing_job_reports_its_exit_code(config: SlurmConfig, tmp_path: Path) -> None:
    backend = SlurmBackend(config)
    backend.launch(make_spec(tmp_path, 102, ["sh", "-c", "exit 3"], "a100-1"))
    events = collect(backend, lambda ev: bool(set(kinds(ev, 102)) & TERMINAL))
    assert [(e.kind, e.exit_code) for e in events if e.job_id == 102][-1] == ("failed", 3)


def test_a_reruns_output_follows_the_first_runs_after_its_header(config: SlurmConfig, tmp_path: Path) -> None:
    backend = SlurmBackend(config)
    first = make_spec(tmp_path, 103, ["echo", "first run"], "a100-1", gpus=2)
    backend.launch(first)
    collect(backend, lambda ev: "finished" in kinds(ev, 103))
    again = replace(first, command=("echo", "second run"), env={RESTART_COUNT_ENV: "1"})
    backend.launch(again)
    collect(backend, lambda ev: "finished" in kinds(ev, 103))
    header = r"=== run 2 of job 103, started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ on a100-1:0,a100-1:1 ==="
    out, err = first.stdout_path.read_text(), first.stderr_path.read_text()
    assert re.fullmatch(rf"first run\n{header}\nsecond run\n", out), out  # appended, not truncated
    assert re.fullmatch(rf"{header}\n", err), err


def test_cancel_through_the_backend(
    config: SlurmConfig, slurm_env: dict[str, str], tmp_path: Path, releases: Callable[[str], Release]
) -> None:
    backend = SlurmBackend(config)
    ref = backend.launch(make_spec(tmp_path, 103, releases("never").command, "h100-4", gpus=8))
    collect(backend, lambda ev: "started" in kinds(ev, 103))
    backend.cancel(103, ref)
    assert kinds(collect(backend, lambda ev: bool(kinds(ev, 103))), 103) == ["cancelled"]
    assert job_info(slurm_env, ref)["JobState"] == "CANCELLED"


def test_scancel_outside_gpucommons_is_reported(
    config: SlurmConfig, slurm_env: dict[str, str], tmp_path: Path, releases: Callable[[str], Release]
) -> None:
    backend = SlurmBackend(config)
    ref = backend.launch(make_spec(tmp_path, 104, releases("never").command, "a100-1", gpus=2))
    collect(backend, lambda ev: "started" in kinds(ev, 104))
    slurm(slurm_env, "scancel", ref)
    assert kinds(collect(backend, lambda ev: bool(kinds(ev, 104))), 104) == ["cancelled"]


def test_node_down_requeues_or_loses_jobs(
    config: SlurmConfig, slurm_env: dict[str, str], tmp_path: Path, releases: Callable[[str], Release]
) -> None:
    backend = SlurmBackend(config)
    never = releases("never").command
    requeue = backend.launch(make_spec(tmp_path, 105, never, "h100-2", 4, env={"GPUC_SLURM_REQUEUE": "1"}))
    backend.launch(make_spec(tmp_path, 106, never, "h100-2", 4, env={"GPUC_SLURM_REQUEUE": "0"}))
    collect(backend, lambda ev: "started" in kinds(ev, 105) and "started" in kinds(ev, 106))
    try:
        slurm(slurm_env, "scontrol", "update", "nodename=h100-2", "state=down", "reason=test")
        events = collect(backend, lambda ev: bool(kinds(ev, 105)) and bool(kinds(ev, 106)))
        assert (kinds(events, 105), kinds(events, 106)) == (["requeued"], ["lost"])
        assert "h100-2" in backend.unavailable_nodes()
        assert job_info(slurm_env, requeue)["JobState"] == "PENDING"
    finally:
        slurm(slurm_env, "scontrol", "update", "nodename=h100-2", "state=resume")
        backend.cancel(105, requeue)
    wait_until(  # right after resume the node is "idle*" until slurmd answers
        lambda: "h100-2" not in backend.unavailable_nodes(),
        30,
        "h100-2 still unavailable after resume",
        poll_s=0.5,
    )


class CountingCli(SlurmCli):
    def __init__(self, slurm_conf: str):
        super().__init__(slurm_conf=slurm_conf)
        self.programs: list[str] = []

    def run(self, args: Sequence[str], **kw: object) -> str:
        self.programs.append(args[0])
        return super().run(args, **kw)  # type: ignore[arg-type]


def test_adopt_after_restart_submits_nothing(
    config: SlurmConfig, slurm_env: dict[str, str], tmp_path: Path, releases: Callable[[str], Release]
) -> None:
    first = SlurmBackend(config)
    long_ref = first.launch(make_spec(tmp_path, 107, releases("never").command, "h100-1"))
    short_ref = first.launch(make_spec(tmp_path, 108, ["true"], "h100-1"))
    wait_until(
        lambda: job_info(slurm_env, short_ref)["JobState"] == "COMPLETED",
        30,
        "the short job never completed",
        poll_s=0.2,
    )
    jobs_before = slurm(slurm_env, "squeue", "-h", "-t", "all", "-o", "%i").split()
    cli = CountingCli(slurm_env["SLURM_CONF"])
    second = SlurmBackend(config, cli)
    try:
        events = second.adopt([(107, long_ref), (108, short_ref)])
        assert [(e.job_id, e.kind, e.exit_code) for e in events] == [
            (107, "started", None), (108, "started", None), (108, "finished", 0)
        ]  # fmt: skip
        assert events[0].at_s == float(job_info(slurm_env, long_ref)["StartTime"])
        assert not [e for e in second.poll() if e.backend_ref == long_ref]
        assert "sbatch" not in cli.programs
        assert slurm(slurm_env, "squeue", "-h", "-t", "all", "-o", "%i").split() == jobs_before
    finally:
        second.cancel(107, long_ref)
    assert kinds(collect(second, lambda ev: bool(kinds(ev, 107))), 107) == ["cancelled"]


def test_job_named_like_ours_but_unknown_is_reported_and_its_gpus_held(
    config: SlurmConfig, slurm_env: dict[str, str], releases: Callable[[str], Release]
) -> None:
    gres, forever = "--gres=gpu:a100:1", releases("never").shell
    out = slurm(slurm_env, "sbatch", "--parsable", "--job-name=gpuc-424242", "-w", "a100-2", gres,
                "-o", "/dev/null", "--wrap", forever)  # fmt: skip
    ref = out.strip().split(";")[0]
    try:
        backend = SlurmBackend(config)
        events = [e for e in backend.poll() if e.backend_ref == ref]
        assert [(e.job_id, e.kind) for e in events] == [(0, "unknown")]
        wait_until(
            lambda: job_info(slurm_env, ref)["JobState"] == "RUNNING",
            30,
            "the stranger never started",
            poll_s=0.2,
        )
        assert not backend.poll()  # reported once
        assert backend.held_gpus() == {"a100-2": 1}
    finally:
        slurm(slurm_env, "scancel", ref)


def test_a_job_still_queued_at_restart_reports_slurms_start_time(
    config: SlurmConfig, slurm_env: dict[str, str], tmp_path: Path, releases: Callable[[str], Release]
) -> None:
    """Slurm keeps our job waiting (a stranger holds the node) while the service restarts: the new
    backend must still report the start, at Slurm's StartTime, once Slurm runs it."""
    forever, started = releases("never"), releases("started")
    out = slurm(slurm_env, "sbatch", "--parsable", "--job-name=blocker", "-w", "h100-3", "--gres=gpu:h100:8",
                "-o", "/dev/null", "--wrap", forever.shell)  # fmt: skip
    blocker = out.strip().split(";")[0]
    ours = ""
    try:
        ours = SlurmBackend(config).launch(make_spec(tmp_path, 109, started.command, "h100-3", gpus=2))
        assert job_info(slurm_env, ours)["JobState"] == "PENDING"
        restarted = SlurmBackend(config)
        assert restarted.adopt([(109, ours)]) == []
        slurm(slurm_env, "scancel", blocker)
        events = collect(restarted, lambda ev: "started" in kinds(ev, 109))
        started.release()  # it runs until its start has been reported
        events += collect(restarted, lambda ev: "finished" in kinds(ev, 109))
        assert kinds(events, 109) == ["started", "finished"]
        info = job_info(slurm_env, ours)
        assert [e.at_s for e in events if e.job_id == 109] == [
            float(info["StartTime"]),
            float(info["EndTime"]),
        ]
    finally:
        slurm(slurm_env, "scancel", blocker, *([ours] if ours else []))


def test_inventory_import_of_the_test_cluster(slurm_env: dict[str, str], tmp_path: Path) -> None:
    inventory = import_slurm_inventory(SlurmCli(slurm_conf=slurm_env["SLURM_CONF"]), name="test")
    shapes = sorted((p.model, p.nodes, p.gpus_per_node) for p in inventory.spec.pools)
    assert shapes == [("A100", 2, 4), ("H100", 4, 8)]
    out = tmp_path / "cluster.toml"
    result = CliRunner().invoke(
        app, ["site", "import-slurm", "--out", str(out), "--slurm-conf", slurm_env["SLURM_CONF"]]
    )
    assert result.exit_code == 0, result.output
    cluster = load_cluster(str(out))
    assert cluster.total_gpus == 4 * 8 + 2 * 4
    assert {n.name for n in cluster.nodes} == set(NODE_INDEX)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_contract(check: Callable[[ContractEnv], None], config: SlurmConfig, tmp_path: Path) -> None:
    """The backend-neutral contract; its time-limit check waits for Slurm's ~90 s enforcement."""

    def spec(job_id: int, argv: Sequence[str], time_limit_s: float) -> LaunchSpec:
        return make_spec(tmp_path, job_id, argv, "a100-2", 2, time_limit_s=time_limit_s)

    check(ContractEnv(lambda: SlurmBackend(config), spec, wait_s=200))
