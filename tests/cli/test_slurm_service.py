"""The live service on a real Slurm cluster, end to end: ``gpuc site import-slurm``, ``gpuc up --backend
slurm`` as a server process, ``gpuc submit``/``cancel``, and Slurm's own clients as the witness.

Each test starts a fresh commons (its own home and database) on the session's Slurm test cluster
(``tests/slurm_cluster.py``) and cancels, at the end, every Slurm job created while it ran, so tests
never wait for each other's GPUs. Jobs block on a named pipe until the test releases them
(``tests/job_release.py``) or ``scancel`` ends them: Slurm enforces time limits only every ~90 s.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.cli.test_jobs_cli import GPUC, Server, free_port, submitted_id
from tests.components import wait_until
from tests.job_release import Release, releases
from tests.slurm_cluster import all_jobs, cancel_and_wait, job_info, slurm

__all__ = ["releases"]

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(180)]
INTERVAL_S = 0.5  # scheduler cycle of the servers under test
ENDED = ("finished", "failed", "cancelled", "timeout", "lost")
OURS = re.compile(r"^gpuc-(\d+)$")


@dataclass(frozen=True)
class Site:
    env: dict[str, str]  # for Slurm's clients
    cluster: Path  # written by gpuc site import-slurm
    backend_config: Path


@dataclass
class Commons:
    server: Server
    site: Site
    slurm_before: frozenset[str]  # Slurm job ids that existed before the test

    def start(self, via_env: bool = False) -> None:
        """``gpuc up`` on the Slurm backend, configured by options or by ``GPUC_*`` variables."""
        if via_env:
            self.server.extra_env |= {
                "GPUC_BACKEND": "slurm",
                "GPUC_CLUSTER": str(self.site.cluster),
                "GPUC_SLURM_CONFIG": str(self.site.backend_config),
            }
            self.server.start()
        else:
            self.server.start(
                *("--backend", "slurm", "--cluster", str(self.site.cluster)),
                *("--slurm-config", str(self.site.backend_config)),
            )

    def submit(self, gpus: int, script: str, *options: str) -> int:
        return submitted_id(
            self.server.gpuc("submit", "--gpus", str(gpus), *options, "--", "sh", "-c", script)
        )

    def job(self, job_id: int) -> dict[str, object]:
        return self.server.client().get_job(job_id).model_dump()

    def running_in_slurm(self, job_id: int, wait_s: float = 30) -> tuple[str, set[str]]:
        """Wait until Slurm runs the job's current segment; its Slurm id and the nodes gpucommons chose."""

        def running() -> tuple[str, set[str]] | None:
            job = self.job(job_id)
            ref = str(job["backend_ref"])
            if (
                job["state"] == "running"
                and ref.isdigit()
                and job_info(self.site.env, ref)["JobState"] == "RUNNING"
            ):
                return ref, {str(g).split(":")[0] for g in job["assigned_gpus"]}  # type: ignore[attr-defined]
            return None

        return wait_until(
            running, wait_s, lambda: f"job {job_id} not running in Slurm: {self.job(job_id)}", poll_s=0.2
        )

    def slurm_jobs(self) -> dict[int, list[str]]:
        """gpucommons job id -> Slurm ids of the jobs named ``gpuc-<id>`` submitted during this test."""
        jobs: dict[int, list[str]] = {}
        for ref, (name, _) in sorted(all_jobs(self.site.env).items(), key=lambda kv: int(kv[0])):
            if ref not in self.slurm_before and (match := OURS.match(name)):
                jobs.setdefault(int(match.group(1)), []).append(ref)
        return jobs

    def metric(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.server.port}/metrics", timeout=5).text
        values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
        return values[0] if values else 0.0

    def wait_steps(self, steps: int, wait_s: float = 60) -> None:
        """Until the scheduler has completed ``steps`` more steps (its cycle histogram's count)."""
        name = "gpuc_scheduler_cycle_duration_seconds_count"
        until = self.metric(name) + steps
        wait_until(
            lambda: self.metric(name) >= until,
            wait_s,
            f"the scheduler did not complete {steps} steps",
            poll_s=0.1,
        )


@pytest.fixture(scope="module")
def site(slurm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Site:
    where = tmp_path_factory.mktemp("site")
    cluster, backend_config = where / "site.toml", where / "slurm.toml"
    argv = ["site", "import-slurm", "--out", str(cluster), "--backend-config", str(backend_config)]
    done = subprocess.run([*GPUC, *argv], env=slurm_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return Site(slurm_env, cluster, backend_config)


@pytest.fixture
def commons(site: Site, tmp_path: Path) -> Iterator[Commons]:
    before = frozenset(all_jobs(site.env))
    extra = {"SLURM_CONF": site.env["SLURM_CONF"], "GPUC_SCHEDULER_INTERVAL_S": str(INTERVAL_S)}
    server = Server(tmp_path / "home", free_port(), extra_env=extra)
    yield Commons(server, site, before)
    server.stop()
    cancel_and_wait(site.env, [ref for ref in all_jobs(site.env) if ref not in before])


def test_job_runs_on_the_chosen_nodes_and_is_charged_what_slurm_reports(
    commons: Commons, releases: Callable[[str], Release]
) -> None:
    commons.start()
    release = releases("looked-at")  # the jobs run until the test has looked at them
    script = f'echo "$SLURMD_NODENAME $CUDA_VISIBLE_DEVICES"; {release.shell}; exit {{code}}'
    ok = commons.submit(3, script.format(code=0), "--model", "H100")
    bad = commons.submit(2, script.format(code=3), "--model", "H100")
    chosen = {job_id: commons.running_in_slurm(job_id)[1] for job_id in (ok, bad)}
    release.release()
    want = {ok: ("finished", 0, "COMPLETED", "0:0"), bad: ("failed", 3, "FAILED", "3:0")}
    for job_id, (state, exit_code, slurm_state, slurm_exit) in want.items():
        job = commons.server.wait_job(job_id, ENDED)
        info = job_info(commons.site.env, str(job["backend_ref"]))
        assert (job["state"], job["exit_code"]) == (state, exit_code)
        assert (info["JobState"], info["ExitCode"], info["JobName"]) == (
            slurm_state,
            slurm_exit,
            f"gpuc-{job_id}",
        )
        node, devices = commons.server.gpuc("logs", str(job_id)).stdout.split()
        assert {node} == chosen[job_id] == {info["NodeList"]}
        assert len(set(devices.split(","))) == int(str(job["gpus"]))
        with sqlite3.connect(commons.server.home / "gpuc.db") as db:
            (gpu_hours,) = db.execute(
                "SELECT sum(gpu_hours) FROM usage WHERE job_id = ?", (job_id,)
            ).fetchone()
        slurm_s = float(info["EndTime"]) - float(info["StartTime"])
        assert gpu_hours == pytest.approx(
            int(str(job["gpus"])) * slurm_s / 3600, abs=int(str(job["gpus"])) / 3600
        )
    assert commons.slurm_jobs() == {
        ok: [str(commons.job(ok)["backend_ref"])],
        bad: [str(commons.job(bad)["backend_ref"])],
    }


def test_node_down_requeues_its_job_and_keeps_new_jobs_off_it_until_resume(
    commons: Commons, releases: Callable[[str], Release]
) -> None:
    commons.start()
    forever = releases("never").shell  # every job here runs until cancelled
    victim = commons.submit(8, forever, "--model", "H100")
    old_ref, nodes = commons.running_in_slurm(victim)
    (down,) = nodes
    slurm(commons.site.env, "scontrol", "update", f"nodename={down}", "state=down", "reason=test")
    try:
        wait_until(
            lambda: commons.job(victim)["restarts"] != 0,
            3 * INTERVAL_S + 2,
            "the job was not requeued in time",
            poll_s=0.1,
        )
        # Slurm's default here is no requeue: the job failed with its node, gpucommons requeued it
        assert job_info(commons.site.env, old_ref)["JobState"] == "NODE_FAIL"
        assert commons.metric('gpuc_backend_events_total{kind="lost"}') == 1
        new_ref, nodes = commons.running_in_slurm(victim)
        assert new_ref != old_ref and down not in nodes
        later = [commons.submit(8, forever, "--model", "H100") for _ in range(3)]
        placed = {j: commons.running_in_slurm(j)[1] for j in later[:2]}
        assert all(down not in n for n in placed.values())
        commons.wait_steps(3)  # a few cycles: the third still waits instead of using the down node
        assert (commons.job(later[2])["state"], commons.job(later[2])["assigned_gpus"]) == ("pending", [])
        assert commons.metric("gpuc_backend_unavailable_nodes") == 1
    finally:
        slurm(commons.site.env, "scontrol", "update", f"nodename={down}", "state=resume")
    assert commons.running_in_slurm(later[2])[1] == {down}
    assert commons.slurm_jobs() == {
        victim: [old_ref, new_ref],
        **{j: [str(commons.job(j)["backend_ref"])] for j in later},
    }


def test_cancel_in_either_system_cancels_in_both(
    commons: Commons, releases: Callable[[str], Release]
) -> None:
    commons.start()
    forever = releases("never").shell
    ours, theirs = (commons.submit(1, forever) for _ in range(2))
    ours_ref, _ = commons.running_in_slurm(ours)
    theirs_ref, _ = commons.running_in_slurm(theirs)
    assert commons.server.gpuc("cancel", str(ours)).returncode == 0
    assert commons.server.wait_job(ours, ENDED, wait_s=30)["state"] == "cancelled"
    assert job_info(commons.site.env, ours_ref)["JobState"] == "CANCELLED"
    slurm(commons.site.env, "scancel", theirs_ref)
    job = commons.server.wait_job(theirs, ENDED, wait_s=30)
    assert (job["state"], job["assigned_gpus"]) == ("cancelled", [])


def test_server_restart_loses_nothing_and_submits_nothing_twice(
    commons: Commons, releases: Callable[[str], Release]
) -> None:
    commons.start(via_env=True)
    launches = commons.server.home.parent / "launches"
    release = releases("restarted")  # the jobs run until the server has restarted
    ids = [commons.submit(2, f'echo "$SLURM_JOB_ID" >> {launches}; {release.shell}') for _ in range(3)]
    refs = {job_id: commons.running_in_slurm(job_id)[0] for job_id in ids}
    commons.server.kill9()
    commons.server.start()
    assert [commons.job(job_id)["state"] for job_id in ids] == ["running"] * 3
    release.release()
    for job_id in ids:
        job = commons.server.wait_job(job_id, ENDED, wait_s=60)
        assert (job["state"], job["backend_ref"], job["restarts"]) == ("finished", refs[job_id], 0)
    assert commons.slurm_jobs() == {job_id: [ref] for job_id, ref in refs.items()}
    assert sorted(launches.read_text().split()) == sorted(refs.values())


def test_job_named_like_ours_but_unknown_is_reported_and_left_alone(
    commons: Commons, releases: Callable[[str], Release]
) -> None:
    commons.start()
    forever = releases("never").shell
    out = slurm(commons.site.env, "sbatch", "--parsable", "--job-name=gpuc-987654", "--gres=gpu:a100:1",
                "-o", "/dev/null", "--wrap", forever)  # fmt: skip
    ref = out.strip().split(";")[0]
    wait_until(
        lambda: commons.metric('gpuc_backend_events_total{kind="unknown"}') >= 1,
        10 * INTERVAL_S + 5,
        "the unknown Slurm job was not counted in /metrics",
        poll_s=0.2,
    )
    log = (commons.server.home.parent / "server.log").read_text()
    assert f"slurm job {ref} is named like a gpucommons job but no job owns it" in log
    assert job_info(commons.site.env, ref)["JobState"] in ("RUNNING", "PENDING")  # reported, not cancelled
