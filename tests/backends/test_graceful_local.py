"""Graceful preemption on the local backend (design note 0016, "In the live service"): a preempted run
gets SIGTERM and its own grace period, then SIGKILL; no run outlives its grace period after the
signal (a property over random grace periods and behaviours); the stop survives a server restart; a
run's checkpoint file is reported as it changes; the job's next run waits for its earlier one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpucommons.backends.local import LocalBackend
from gpucommons.domain.job import Placement
from gpucommons.engine.ports import BackendEvent, LaunchDeferredError, LaunchSpec, checkpoint_file
from tests.backends.contract import TERMINAL
from tests.backends.test_local import launch_when_vacated, spec_builder
from tests.components import wait_until
from tests.job_release import Release, releases

__all__ = ["releases"]

pytestmark = pytest.mark.timeout(120)
# How long after its grace period a run that ignored SIGTERM may still be seen alive: the poll that
# kills it comes at the deadline (the test polls every POLL_S, as the engine steps at the deadline),
# then SIGKILL and the kernel's reaping. Generous for two shared cores.
KILL_SLACK_S = 0.5
POLL_S = 0.01


_STATES: list[Path] = []  # every backend's state directory in this test, for ``_reap_runs``


def _backend(state: Path, work_root: Path, grace_s: float = 30.0) -> LocalBackend:
    _STATES.append(state)
    return LocalBackend(state, grace_s=grace_s, work_root=work_root)


@pytest.fixture(autouse=True)
def _reap_runs() -> Iterator[None]:
    """However a test ends, no run it launched outlives it."""
    yield
    for state in _STATES:
        for meta in state.glob("*/meta.json"):
            with contextlib.suppress(ValueError, KeyError, ProcessLookupError, PermissionError):
                os.killpg(int(json.loads(meta.read_text())["ref"].split(":")[0]), signal.SIGKILL)
    _STATES.clear()


def _wait_for_text(path: Path, text: str, wait_s: float = 30) -> None:
    wait_until(
        lambda: path.exists() and text in path.read_text(), wait_s, f"no {text!r} in {path}", poll_s=0.02
    )


def _until_ended(backend: LocalBackend, job_id: int, wait_s: float = 30) -> list[BackendEvent]:
    """Poll as the engine steps (at every stopping run's deadline, else every ``POLL_S``) until the
    job's run has ended; every event seen."""
    events: list[BackendEvent] = []

    def ended() -> bool:
        events.extend(backend.poll())
        return any(e.job_id == job_id and e.kind in TERMINAL for e in events)

    wait_until(ended, wait_s, lambda: f"job {job_id} never ended: {events}", poll_s=POLL_S)
    return events


def _end(events: list[BackendEvent], job_id: int) -> BackendEvent:
    return next(e for e in events if e.job_id == job_id and e.kind in TERMINAL)


def test_a_preempted_run_checkpoints_within_its_grace_period_and_says_when_it_was_signalled(
    tmp_path: Path, work_root: Path
) -> None:
    backend = _backend(tmp_path / "state", work_root)
    script = (
        'trap \'echo "step 7" > "$HOME/state"; touch "$GPUC_CHECKPOINT_FILE"; echo saved; exit 0\' TERM; '
        "echo ready; while :; do sleep 0.05; done"
    )
    spec = spec_builder(tmp_path / "spec")(21, ["sh", "-c", script], 60)
    ref = backend.launch(spec)
    _wait_for_text(spec.stdout_path, "ready")
    before = time.time()
    backend.preempt(21, ref, 20.0)
    assert before <= (backend.next_deadline_s() or 0) - 20.0 <= time.time()
    events = _until_ended(backend, 21)
    end = _end(events, 21)
    assert (end.kind, end.backend_ref, end.exit_code) == ("cancelled", ref, 0)
    assert end.signalled_s is not None and before <= end.signalled_s <= end.at_s < end.signalled_s + 20.0
    workdir = work_root / "21"
    assert (workdir / "state").read_text() == "step 7\n"  # in its own directory, kept for its next run
    checkpoints = [e for e in events if e.kind == "checkpoint"]
    mtime = os.lstat(checkpoint_file(workdir, 21)).st_mtime
    assert [(e.job_id, e.backend_ref, e.at_s) for e in checkpoints] == [(21, ref, mtime)]
    assert backend.next_deadline_s() is None


def test_a_run_that_ignores_sigterm_is_killed_when_its_grace_period_ends(
    tmp_path: Path, work_root: Path
) -> None:
    backend = _backend(tmp_path / "state", work_root)
    spec = spec_builder(tmp_path / "spec")(22, ["sh", "-c", "trap 'echo term' TERM; echo ready; "
                                                 "while :; do sleep 0.05; done"], 60)  # fmt: skip
    ref = backend.launch(spec)
    _wait_for_text(spec.stdout_path, "ready")
    backend.preempt(22, ref, 1.0)
    end = _end(_until_ended(backend, 22), 22)
    assert end.signalled_s is not None
    assert end.signalled_s + 1.0 <= end.at_s <= end.signalled_s + 1.0 + KILL_SLACK_S
    assert end.kind == "cancelled" and end.exit_code is None  # killed: its wrapper wrote no code
    assert "term" in spec.stdout_path.read_text()  # it did get the signal


BEHAVIOURS = ("exits", "exits-late", "ignores")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cases=st.lists(
        st.tuples(st.floats(0.05, 0.6), st.sampled_from(BEHAVIOURS), st.floats(0.0, 1.0)),
        min_size=1,
        max_size=3,
    )
)
def test_no_run_outlives_its_grace_period_after_the_signal(
    tmp_path_factory: pytest.TempPathFactory, work_root: Path, cases: list[tuple[float, str, float]]
) -> None:
    """Whatever the grace periods and whatever the runs do with SIGTERM (exit at once, exit after a
    while, before or after the grace period ends, or ignore it), each run is gone by its signal plus
    its grace period (plus the kill's latency), and none is killed before its grace period ends."""
    root = tmp_path_factory.mktemp("runs")
    backend = _backend(root / "state", work_root)
    make = spec_builder(root / "spec")
    launched: dict[int, tuple[LaunchSpec, str, float, str, float]] = {}
    for i, (grace_s, behaviour, share) in enumerate(cases):
        job_id = 100 + i
        delay_s = share * 2 * grace_s  # "exits-late": after a share of twice its grace period
        trap = {"exits": "exit 0", "exits-late": f"sleep {delay_s:.3f}; exit 0", "ignores": "echo term"}
        script = f"trap '{trap[behaviour]}' TERM; echo ready; while :; do sleep 0.05; done"
        spec = replace(make(job_id, ["sh", "-c", script], 60), placement=Placement(((0, (i,)),)))
        launched[job_id] = (spec, backend.launch(spec), grace_s, behaviour, delay_s)
    for spec, *_ in launched.values():
        _wait_for_text(spec.stdout_path, "ready")
    for job_id, (_, ref, grace_s, _, _) in launched.items():
        backend.preempt(job_id, ref, grace_s)
    events: list[BackendEvent] = []
    for job_id in launched:
        if not any(e.job_id == job_id and e.kind in TERMINAL for e in events):
            events.extend(_until_ended(backend, job_id))
    for job_id, (_, _, grace_s, behaviour, delay_s) in launched.items():
        end = _end(events, job_id)
        assert end.signalled_s is not None
        assert end.at_s <= end.signalled_s + grace_s + KILL_SLACK_S, (behaviour, grace_s, end)
        if behaviour == "ignores" or (behaviour == "exits-late" and delay_s > grace_s + KILL_SLACK_S):
            assert end.at_s >= end.signalled_s + grace_s, (behaviour, grace_s, end)  # never before
            assert end.exit_code is None  # killed


def test_a_stop_recorded_by_a_server_that_died_keeps_its_grace_period(
    tmp_path: Path, work_root: Path
) -> None:
    """The next server, asked to stop the run again (the engine stops what it finds still running of a
    job that no longer runs), neither signals it again nor grants it a new grace period."""
    first = _backend(tmp_path / "state", work_root)
    spec = spec_builder(tmp_path / "spec")(23, ["sh", "-c", "trap 'echo term' TERM; echo ready; "
                                                 "while :; do sleep 0.05; done"], 60)  # fmt: skip
    ref = first.launch(spec)
    _wait_for_text(spec.stdout_path, "ready")
    first.preempt(23, ref, 1.5)
    signalled = time.time()
    second = _backend(tmp_path / "state", work_root, grace_s=60.0)  # the first is gone
    (unknown,) = [e for e in second.adopt([]) if e.job_id == 23 and e.kind == "unknown"]
    second.cancel(23, unknown.backend_ref)
    assert second.next_deadline_s() == pytest.approx(signalled + 1.5, abs=0.5)
    end = _end(_until_ended(second, 23), 23)
    assert end.at_s <= signalled + 1.5 + KILL_SLACK_S
    assert end.signalled_s is not None and end.signalled_s <= signalled
    assert spec.stdout_path.read_text().count("term") == 1  # one signal, from the first server


def test_a_checkpoint_file_is_reported_as_it_changes_and_never_from_the_future(
    tmp_path: Path, work_root: Path, releases: Callable[[str], Release]
) -> None:
    backend = _backend(tmp_path / "state", work_root)
    done = releases("done")
    script = f'touch "$GPUC_CHECKPOINT_FILE"; echo one; {done.shell}'
    spec = spec_builder(tmp_path / "spec")(24, ["sh", "-c", script], 60)
    ref = backend.launch(spec)
    _wait_for_text(spec.stdout_path, "one")
    path = checkpoint_file(work_root / "24", 24)
    first = wait_until(
        lambda: [e for e in backend.poll() if e.kind == "checkpoint"], 30, "no checkpoint reported"
    )
    assert [(e.job_id, e.backend_ref, e.at_s) for e in first] == [(24, ref, path.stat().st_mtime)]
    assert [e for e in backend.poll() if e.kind == "checkpoint"] == []  # unchanged: not again
    future = time.time() + 3600
    os.utime(path, (future, future))
    (later,) = [e for e in backend.poll() if e.kind == "checkpoint"]
    assert first[0].at_s < later.at_s <= time.time()
    done.release()
    assert _end(_until_ended(backend, 24), 24).kind == "finished"


def test_a_jobs_next_run_waits_for_its_earlier_run_to_stop(
    tmp_path: Path, work_root: Path, releases: Callable[[str], Release]
) -> None:
    """Even on other GPUs: the earlier run may still be writing the checkpoint the next one reads."""
    backend = _backend(tmp_path / "state", work_root)
    saved = releases("saved")
    make = spec_builder(tmp_path / "spec")
    script = (
        f"trap '{saved.shell}; echo saved > \"$HOME/state\"; exit 0' TERM; echo ready; {releases('x').shell}"
    )
    spec = make(25, ["sh", "-c", script], 60)
    ref = backend.launch(spec)
    _wait_for_text(spec.stdout_path, "ready")
    backend.preempt(25, ref, 30.0)
    elsewhere = Placement(((1, (0, 1)),))
    rerun = replace(
        make(25, ["sh", "-c", 'cat "$HOME/state"'], 60), placement=elsewhere, node_names=("h100-2",)
    )
    with pytest.raises(LaunchDeferredError, match="working directory"):
        backend.launch(rerun)
    saved.release()
    launch_when_vacated(backend, rerun)
    events = _until_ended(backend, 25)
    assert any(e.kind == "cancelled" and e.backend_ref == ref for e in events)  # the earlier run's end
    _wait_for_text(rerun.stdout_path, "saved")  # the rerun found what the earlier one left
