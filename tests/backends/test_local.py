"""The backend contract run against ``LocalBackend``, plus what only the local backend promises: a job's
identity in its environment, and no crash during a launch that runs a job twice or leaves it unseen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from gpucommons.backends import wrapper
from gpucommons.backends.isolation import WRAPPER_PATH
from gpucommons.backends.local import LocalBackend
from gpucommons.backends.wrapper import ABANDONED_EXIT
from gpucommons.domain.job import Placement
from gpucommons.engine.ports import (
    Backend,
    BackendEvent,
    LaunchDeferredError,
    LaunchSpec,
    NodeUnavailableError,
)
from tests.backends.contract import CHECKS, ContractEnv, wait_for
from tests.components import wait_until
from tests.job_release import Release, releases

__all__ = ["releases"]

pytestmark = pytest.mark.timeout(60)


def spec_builder(
    root: Path, env: dict[str, str] | None = None
) -> Callable[[int, Sequence[str], float], LaunchSpec]:
    def make(job_id: int, argv: Sequence[str], time_limit_s: float) -> LaunchSpec:
        work = root / f"job-{job_id}"
        return LaunchSpec(
            job_id=job_id,
            command=tuple(argv),
            placement=Placement(((0, (2, 5)),)),
            node_names=("h100-1",),
            gpu_model="H100",
            time_limit_s=time_limit_s,
            workdir=work,
            stdout_path=work / "stdout.log",
            stderr_path=work / "stderr.log",
            env=env or {},
            account="demo",
        )

    return make


@pytest.fixture
def env(tmp_path: Path, work_root: Path) -> ContractEnv:
    return ContractEnv(
        lambda: LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root),
        spec_builder(tmp_path / "spec"),
        job_dir=lambda spec: work_root / str(spec.job_id),
    )


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_contract(check: Callable[[ContractEnv], None], env: ContractEnv) -> None:
    check(env)


def test_job_sees_its_gpus_and_identity(env: ContractEnv) -> None:
    backend = env.make_backend()
    names = ("CUDA_VISIBLE_DEVICES", "GPUC_JOB_ID", "GPUC_GPUS")
    script = f"import os; print(*(os.environ[n] for n in {names!r}))"
    spec = env.make_spec(7, ["python3", "-c", script], 60)
    backend.launch(spec)
    assert wait_for(backend, 7, 30).kind == "finished"
    assert spec.stdout_path.read_text().split() == ["2,5", "7", "h100-1:2,5"]


def test_missing_command_fails_with_127(env: ContractEnv) -> None:
    backend = env.make_backend()
    backend.launch(env.make_spec(8, ["/no/such/program"], 60))
    event = wait_for(backend, 8, 30)
    assert (event.kind, event.exit_code) == ("failed", 127)


def test_adopt_reports_vanished_and_never_launched_jobs_as_lost(env: ContractEnv) -> None:
    events = env.make_backend().adopt([(9, f"{2**22 + 17}:1"), (10, "pending:never")])
    assert sorted((e.job_id, e.kind) for e in events) == [(9, "lost"), (10, "lost")]


def test_adopt_resolves_a_launch_recorded_before_its_reference(
    tmp_path: Path, work_root: Path, releases: Callable[[str], Release]
) -> None:
    make_spec = spec_builder(tmp_path / "spec", {"GPUC_LAUNCH_ID": "abc"})
    first = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    ref = first.launch(make_spec(11, releases("never").command, 60))
    second = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    events = second.adopt([(11, "pending:abc")])
    assert [(e.job_id, e.kind, e.backend_ref) for e in events] == [(11, "started", ref)]
    second.cancel(11, ref)
    assert wait_for(second, 11, 30).kind == "cancelled"


def test_adopt_reports_stray_processes_as_unknown(
    env: ContractEnv, releases: Callable[[str], Release]
) -> None:
    first = env.make_backend()
    ref = first.launch(env.make_spec(12, releases("never").command, 60))
    events = env.make_backend().adopt([])
    assert [(e.job_id, e.kind, e.backend_ref) for e in events] == [(12, "unknown", ref)]
    pid = int(ref.split(":")[0])
    first.cancel(12, ref)
    assert wait_for(first, 12, 30).kind == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


class _Crash(BaseException):
    """The server dying at one exact point: no handler of the backend's runs."""


def _wait_for_file(path: Path, wait_s: float = 30) -> None:
    wait_until(path.exists, wait_s, f"{path} never appeared", poll_s=0.02)


def test_a_crash_between_record_and_process_is_resolved_and_nothing_runs_later(
    tmp_path: Path, work_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_spec = spec_builder(tmp_path / "spec", {"GPUC_LAUNCH_ID": "L21"})
    first = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)

    def crash(*_args: object) -> None:
        raise _Crash

    monkeypatch.setattr(first, "_start_wrapper", crash)
    with pytest.raises(_Crash):
        first.launch(make_spec(21, ["sh", "-c", "echo ran >> runs"], 60))
    job_dir = tmp_path / "state" / "21"
    assert json.loads((job_dir / "meta.json").read_text())["launch_id"] == "L21"  # recorded first
    second = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)  # the restart
    events = second.adopt([(21, "pending:L21")])
    assert [(e.job_id, e.kind, e.detail) for e in events] == [(21, "lost", "never launched")]
    # a wrapper that starts only now (a fork that outlived the crash) finds the launch resolved
    late = subprocess.run([sys.executable, "-I", "-S", WRAPPER_PATH, str(job_dir)], timeout=30, check=False)
    assert late.returncode == ABANDONED_EXIT
    assert not (work_root / "21" / "runs").exists() and not (job_dir / "exit_code").exists()
    assert second.poll() == [] and second.adopt([]) == []  # no process of it anywhere


def test_a_crash_after_the_process_but_before_its_reference_adopts_it_once(
    tmp_path: Path, work_root: Path, releases: Callable[[str], Release]
) -> None:
    make_spec = spec_builder(tmp_path / "spec", {"GPUC_LAUNCH_ID": "L22"})
    first = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    adopted = releases("adopted")  # the run goes on until the restarted server has adopted it
    ref = first.launch(make_spec(22, ["sh", "-c", f"echo ran >> runs; {adopted.shell}"], 60))
    job_dir = tmp_path / "state" / "22"
    _wait_for_file(job_dir / "claim")
    meta = json.loads((job_dir / "meta.json").read_text())
    del meta["ref"]  # as if the server died right after starting the process
    (job_dir / "meta.json").write_text(json.dumps(meta))
    second = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    events = second.adopt([(22, "pending:L22")])
    assert [(e.job_id, e.kind, e.backend_ref) for e in events] == [(22, "started", ref)]
    adopted.release()
    event = wait_for(second, 22, 30)
    assert (event.kind, event.exit_code) == ("finished", 0)
    assert (work_root / "22" / "runs").read_text() == "ran\n"


def test_adopt_reports_the_start_of_a_run_that_ended_while_no_server_watched(
    tmp_path: Path, work_root: Path
) -> None:
    """A run launched by a server that died before its next poll, and that ended before the restart:
    the restarted server reports its real start before its end, so it is charged from the launch."""
    make_spec = spec_builder(tmp_path / "spec", {"GPUC_LAUNCH_ID": "L23"})
    first = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    before = time.time()
    ref = first.launch(make_spec(23, ["true"], 60))
    after = time.time()
    assert wait_for(first, 23, 30).kind == "finished"  # what it saw dies with it: nothing recorded
    for job_ref in (ref, "pending:L23"):  # the reference recorded, or only the intent
        second = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
        events = second.adopt([(23, job_ref)])
        assert [(e.kind, e.backend_ref) for e in events] == [("started", ref), ("finished", ref)]
        assert before <= events[0].at_s <= after <= events[1].at_s


def launch_when_vacated(backend: Backend, spec: LaunchSpec, wait_s: float = 30) -> str:
    """Launch ``spec`` as the engine does: again after each deferral, until a stopping run has left."""
    refs: list[str] = []

    def launched() -> bool:
        try:
            refs.append(backend.launch(spec))
        except LaunchDeferredError:
            return False
        return True

    wait_until(launched, wait_s, f"job {spec.job_id}'s launch was deferred all along", poll_s=0.02)
    return refs[0]


def test_a_launch_onto_gpus_a_stopping_job_holds_is_deferred_until_it_has_left(
    env: ContractEnv, releases: Callable[[str], Release]
) -> None:
    """The scheduler frees a cancelled job's GPUs when it decides; the job may take its grace period to
    exit. The next job on those GPUs must not start before it has, and its launch must not wait for it
    either: it is refused (deferred) while the first job stops, here until the test releases it."""
    backend = env.make_backend()
    never, stopped = releases("never"), releases("stopped")
    slow_exit = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        f"    print('stopping', flush=True); open({str(stopped.path)!r}).read()\n"
        "    print('end', time.time(), flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        f"open({str(never.path)!r}).read()\n"
    )
    first = env.make_spec(13, ["python3", "-c", slow_exit], 60)
    ref = backend.launch(first)
    _wait_for_text(first.stdout_path, "ready")
    backend.cancel(13, ref)
    _release_when(first.stdout_path, "stopping", stopped)  # while the launch below waits
    second = env.make_spec(14, ["python3", "-c", "import time; print('start', time.time(), flush=True)"], 60)
    _wait_for_text(first.stdout_path, "stopping")
    with pytest.raises(LaunchDeferredError, match="job 13"):
        backend.launch(second)  # the same GPUs (2 and 5 of h100-1): at once, nothing started
    assert not second.stdout_path.exists()  # no wrapper was started for it
    launch_when_vacated(backend, second)
    events: list[BackendEvent] = []

    def finished() -> bool:
        events.extend(backend.poll())
        return any(e.job_id == 14 and e.kind == "finished" for e in events)

    wait_until(finished, 30, lambda: f"job 14 never finished: {events}")
    ended = float(first.stdout_path.read_text().split("end")[1].split()[0])
    started = float(second.stdout_path.read_text().split()[1])
    assert started >= ended
    # The segment is charged from when the process started, after the wait, not from the decision.
    (reported,) = [e.at_s for e in events if e.job_id == 14 and e.kind == "started"]
    assert ended - 0.05 <= reported <= started


def _wait_for_text(path: Path, text: str, wait_s: float = 30) -> None:
    def written() -> bool:
        return path.exists() and text in path.read_text()

    wait_until(written, wait_s, f"{text!r} never appeared in {path}", poll_s=0.02)


def _release_when(path: Path, text: str, release: Release) -> threading.Thread:
    """On a thread of its own, release ``release`` once ``text`` is in ``path``: a job that is stopping
    ends only then, while the test's own thread waits in a launch for it to be gone."""

    def when_written() -> None:
        _wait_for_text(path, text)
        release.release()

    thread = threading.Thread(target=when_written, daemon=True)
    thread.start()
    return thread


def test_a_launch_onto_a_node_out_of_service_runs_nothing(tmp_path: Path, work_root: Path) -> None:
    backend = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root, down_nodes=("h100-1",))
    spec = spec_builder(tmp_path / "spec")(15, ["true"], 60)
    with pytest.raises(NodeUnavailableError, match="h100-1"):
        backend.launch(spec)
    assert backend.poll() == [] and not (tmp_path / "state" / "15" / "meta.json").exists()


def test_a_run_that_ended_while_no_server_watched_is_reported_until_acknowledged(
    tmp_path: Path, work_root: Path
) -> None:
    make_spec = spec_builder(tmp_path / "spec")
    first = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    ref = first.launch(make_spec(16, ["true"], 60))
    _wait_for_file(tmp_path / "state" / "16" / "exit_code")  # it ended; the server that ran it is gone
    _wait_until_gone(int(ref.split(":")[0]))  # the wrapper writes the file just before it exits
    second = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    (event,) = second.adopt([])  # the job is no longer running in the commons' records
    assert (event.job_id, event.kind, event.backend_ref, event.exit_code) == (16, "finished", ref, 0)
    assert event.at_s == (tmp_path / "state" / "16" / "exit_code").stat().st_mtime
    # A server that died before recording it hears of it again; once recorded, never again.
    third = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    assert third.adopt([]) == [event]
    third.acknowledge([event])
    assert LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root).adopt([]) == []


def test_the_end_of_a_run_its_next_launch_replaced_survives_a_crash(
    tmp_path: Path, work_root: Path, releases: Callable[[str], Release]
) -> None:
    """A preempted run that exits as its job starts again: its record is replaced by the new launch's,
    but its end (to which its segment is charged) is kept until the commons has it, even when the server
    that saw it dies before recording it."""
    make_spec = spec_builder(tmp_path / "spec")
    first = LocalBackend(tmp_path / "state", grace_s=5.0, work_root=work_root)
    never, stopped = releases("never"), releases("stopped")
    slow_stop = f"trap 'echo stopping; {stopped.shell}; exit 143' TERM; echo ready; {never.shell}"
    old_spec = make_spec(18, ["sh", "-c", slow_stop], 60)
    old = first.launch(old_spec)
    _wait_for_text(old_spec.stdout_path, "ready")
    first.cancel(18, old)  # the preemption: it stops only once released
    _release_when(old_spec.stdout_path, "stopping", stopped)
    new = launch_when_vacated(first, make_spec(18, never.command, 60))  # once the old run left
    # The server dies before its next poll: what it knew of the old run's end is gone with it.
    second = LocalBackend(tmp_path / "state", grace_s=5.0, work_root=work_root)
    events = second.adopt([(18, new)])
    ends = [e for e in events if e.backend_ref == old]
    assert [(e.job_id, e.kind) for e in ends] == [(18, "cancelled")], events
    assert ends[0].at_s <= time.time()
    second.acknowledge(ends)
    third = LocalBackend(tmp_path / "state", grace_s=5.0, work_root=work_root)
    assert [e for e in third.adopt([(18, new)]) if e.backend_ref == old] == []
    third.cancel(18, new)
    assert wait_for(third, 18, 30).backend_ref == new


def test_the_end_of_a_run_a_dead_server_left_running_is_kept_when_its_job_starts_again(
    tmp_path: Path, work_root: Path, releases: Callable[[str], Release]
) -> None:
    """A run nobody tracks any more (its server died after preempting it) still runs when its job's next
    run is launched: it is killed then, and that kill is the end its segment is charged to."""
    make_spec = spec_builder(tmp_path / "spec")
    first = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    spec = make_spec(19, ["sh", "-c", f"echo ready; {releases('never').shell}"], 60)
    old = first.launch(spec)
    _wait_for_text(spec.stdout_path, "ready")
    second = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    before = time.time()
    new = second.launch(make_spec(19, ["true"], 60))
    (end,) = [e for e in second.poll() if e.backend_ref == old]
    assert (end.job_id, end.kind) == (19, "cancelled") and before <= end.at_s <= time.time()
    _wait_until_gone(int(old.split(":")[0]))
    restarted = LocalBackend(tmp_path / "state", grace_s=1.0, work_root=work_root)
    assert end in restarted.adopt([(19, new)])  # not acknowledged: reported again


def test_relaunching_a_job_still_stopping_reports_the_old_runs_end(
    env: ContractEnv, releases: Callable[[str], Release]
) -> None:
    backend = env.make_backend()
    trap = (
        f"trap '' TERM; {releases('never').shell}"  # ignores SIGTERM, as its cat does: still stopping later
    )
    old = backend.launch(env.make_spec(17, ["sh", "-c", trap], 60))
    backend.cancel(17, old)
    new = launch_when_vacated(backend, env.make_spec(17, ["true"], 60))  # killed at its grace's end
    events = [(e.kind, e.backend_ref) for e in backend.poll() if e.job_id == 17]
    assert ("cancelled", old) in events and new != old


def _wait_until_gone(pid: int, wait_s: float = 30) -> None:
    """Until ``pid`` has exited (a zombie, not yet reaped by this process, counts as gone)."""

    def gone() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    wait_until(gone, wait_s, f"process {pid} still running", poll_s=0.02)


def test_a_stop_that_comes_before_the_command_exists_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM to the group while the wrapper was still starting (a cancel just after the launch) would
    otherwise be lost: the command, started after it, would run on until the grace period's SIGKILL."""
    ran = tmp_path / "ran"
    launch: dict[str, object] = {"command": ["touch", str(ran)], "env": {}, "workdir": str(tmp_path)}
    monkeypatch.setattr(wrapper._Stop, "asked", True)
    assert wrapper._run(launch) == 143 and not ran.exists()
    monkeypatch.setattr(wrapper._Stop, "asked", False)
    assert wrapper._run(launch) == 0 and ran.exists()
