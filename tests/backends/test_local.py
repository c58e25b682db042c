"""The backend contract run against ``LocalBackend``, plus what only the local backend promises."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from gpucommons.backends.local import LocalBackend
from gpucommons.domain.job import Placement
from gpucommons.engine.ports import LaunchSpec
from tests.backends.contract import CHECKS, ContractEnv, wait_for

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
def env(tmp_path: Path) -> ContractEnv:
    return ContractEnv(lambda: LocalBackend(tmp_path / "state", grace_s=1.0), spec_builder(tmp_path / "work"))


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


def test_adopt_resolves_a_launch_recorded_before_its_reference(tmp_path: Path) -> None:
    make_spec = spec_builder(tmp_path / "work", {"GPUC_LAUNCH_ID": "abc"})
    first = LocalBackend(tmp_path / "state", grace_s=1.0)
    ref = first.launch(make_spec(11, ["sleep", "30"], 60))
    second = LocalBackend(tmp_path / "state", grace_s=1.0)
    events = second.adopt([(11, "pending:abc")])
    assert [(e.job_id, e.kind, e.backend_ref) for e in events] == [(11, "started", ref)]
    second.cancel(11, ref)
    assert wait_for(second, 11, 30).kind == "cancelled"


def test_adopt_reports_stray_processes_as_unknown(env: ContractEnv) -> None:
    first = env.make_backend()
    ref = first.launch(env.make_spec(12, ["sleep", "30"], 60))
    events = env.make_backend().adopt([])
    assert [(e.job_id, e.kind, e.backend_ref) for e in events] == [(0, "unknown", ref)]
    pid = int(ref.split(":")[0])
    first.cancel(12, ref)
    assert wait_for(first, 12, 30).kind == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
