"""SlurmBackend against a scripted Slurm client: the sbatch call it builds and the events it derives
from successive ``squeue --json`` answers (no Slurm needed)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gpucommons.backends.slurm import SlurmBackend, make_slurm_backend
from gpucommons.backends.slurm_cli import SlurmCli, SlurmCommandError, SlurmTimeoutError
from gpucommons.backends.slurm_submit import SlurmConfig, build_submission
from gpucommons.config import Settings
from gpucommons.domain.job import Placement
from gpucommons.engine.ports import HoldsForeignGpus, LaunchSpec, LaunchUncertainError
from gpucommons.errors import ConfigError, InvalidRequestError
from gpucommons.service.scheduler import build_backend


class ScriptedCli(SlurmCli):
    """Answers each command from ``answers[program]`` (a list: one answer per call, the last repeats);
    an answer ``ERROR:<message>`` fails the command, ``TIMEOUT:`` makes it time out."""

    def __init__(self, answers: dict[str, list[str]]):
        super().__init__()
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def run(
        self, args: Sequence[str], *, stdin: str | None = None, env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> str:  # fmt: skip
        self.calls.append(tuple(args))
        queue = self.answers.get(args[0], [""])
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if answer.startswith("ERROR:"):
            raise SlurmCommandError(answer.removeprefix("ERROR:"))
        if answer.startswith("TIMEOUT:"):
            raise SlurmTimeoutError(f"{args[0]}: no answer within 30 s")
        return answer


def squeue(*jobs: dict[str, Any]) -> str:
    base = {"name": "gpuc-1", "restart_cnt": 0, "exit_code": 0, "start_time": 0, "end_time": 0, "nodes": ""}
    return json.dumps({"jobs": [base | j for j in jobs]})


def spec(
    tmp_path: Path, node_gpus: tuple[tuple[int, tuple[int, ...]], ...] = ((0, (0, 1)),), **kw: Any
) -> LaunchSpec:
    fields: dict[str, Any] = {
        "job_id": 1, "command": ("python", "train.py", "--lr", "1e-3; rm -rf /"),
        "placement": Placement(node_gpus), "node_names": ("h100-2",), "gpu_model": "H100",
        "time_limit_s": 3601.0, "workdir": tmp_path / "w", "stdout_path": tmp_path / "w" / "out",
        "stderr_path": tmp_path / "w" / "err", "env": {"GPUC_SLURM_REQUEUE": "1", "A": "x,y"},
        "account": "proj-a",
    }  # fmt: skip
    return LaunchSpec(**(fields | kw))


def test_submission_pins_nodes_and_types_gres(tmp_path: Path) -> None:
    config = SlurmConfig(partitions={"h100": "h100"}, enforce_account=True)
    sub = build_submission(config, spec(tmp_path))
    args = set(sub.args)
    assert {"--nodes=1", "--nodelist=h100-2", "--gres=gpu:h100:2", "--partition=h100", "--account=proj-a",
            "--time=61", "--job-name=gpuc-1", "--comment=gpucommons-job=1", "--requeue", "--export=ALL",
            f"--chdir={tmp_path / 'w'}", f"--output={tmp_path / 'w' / 'out'}"} <= args  # fmt: skip
    assert "exec python train.py --lr '1e-3; rm -rf /'" in sub.script
    assert sub.env["A"] == "x,y" and "GPUC_SLURM_REQUEUE" not in sub.env


def test_submission_defaults_and_multi_node(tmp_path: Path) -> None:
    config = SlurmConfig(node_names={"h100-1": "gn001", "h100-2": "gn002"})
    sub = build_submission(
        config,
        spec(tmp_path, ((0, (0, 1, 2, 3)), (1, (0, 1, 2, 3))), node_names=("h100-1", "h100-2"), env={}),
    )
    assert {
        "--nodes=2",
        "--nodelist=gn001,gn002",
        "--gres=gpu:h100:4",
        "--no-requeue",
        "--ntasks-per-node=1",
    } <= set(sub.args)
    assert not any(a.startswith(("--account", "--partition")) for a in sub.args)
    assert "exec srun python" in sub.script


def test_uneven_placement_is_rejected(tmp_path: Path) -> None:
    bad = spec(tmp_path, ((0, (0, 1)), (1, (0,))), node_names=("h100-1", "h100-2"))
    with pytest.raises(InvalidRequestError, match="same GPU count"):
        build_submission(SlurmConfig(), bad)


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="partitionz"):
        make_slurm_backend({"partitionz": {}})
    assert make_slurm_backend({"requeue": True}).config.requeue


def test_poll_maps_states_and_reports_unknown_jobs(tmp_path: Path) -> None:
    cli = ScriptedCli({
        "sbatch": ["41\n", "42\n", "43\n", "44\n"],
        "squeue": [
            squeue({"job_id": 41, "job_state": "RUNNING", "start_time": 100, "nodes": "h100-2"},
                   {"job_id": 42, "job_state": "PENDING"},
                   {"job_id": 43, "job_state": "RUNNING", "start_time": 5},
                   {"job_id": 44, "job_state": "RUNNING", "start_time": 6},
                   {"job_id": 50, "name": "gpuc-9", "job_state": "RUNNING"},
                   {"job_id": 51, "name": "gpuc-8", "job_state": "COMPLETED"},
                   {"job_id": 52, "name": "other", "job_state": "RUNNING"}),
            squeue({"job_id": 41, "job_state": "FAILED", "exit_code": 768, "start_time": 100, "end_time": 130,
                    "nodes": "h100-2"},
                   {"job_id": 42, "job_state": "CANCELLED", "exit_code": 15, "end_time": 7},
                   {"job_id": 43, "job_state": "PENDING", "restart_cnt": 1},
                   {"job_id": 44, "job_state": "NODE_FAIL", "start_time": 6, "end_time": 9,
                    "nodes": "h100-1"},
                   {"job_id": 50, "name": "gpuc-9", "job_state": "RUNNING"}),
        ],
        "scontrol": ["AccountingStorageType = accounting_storage/none\n"],
    })  # fmt: skip
    backend = SlurmBackend(SlurmConfig(), cli, clock=lambda: 1000.0)
    refs = [backend.launch(spec(tmp_path, job_id=i)) for i in (1, 2, 3, 4)]
    assert refs == ["41", "42", "43", "44"]
    first = [(e.job_id, e.kind, e.at_s, e.backend_ref) for e in backend.poll()]
    assert first == [(1, "started", 100.0, "41"), (3, "started", 5.0, "43"), (4, "started", 6.0, "44"),
                     (0, "unknown", 1000.0, "50")]  # fmt: skip
    second = [(e.job_id, e.kind, e.at_s, e.exit_code) for e in backend.poll()]
    # job 2 was cancelled while waiting in Slurm's queue: it starts and ends at once, so costs nothing
    assert second == [(1, "failed", 130.0, 3), (2, "started", 7.0, None), (2, "cancelled", 7.0, 143),
                      (3, "requeued", 1000.0, None), (4, "lost", 9.0, 0)]  # fmt: skip


def test_adopt_never_submits_and_reports_what_ended(tmp_path: Path) -> None:
    cli = ScriptedCli({
        "squeue": [squeue({"job_id": 7, "job_state": "RUNNING", "start_time": 1},
                          {"job_id": 8, "job_state": "COMPLETED", "start_time": 1, "end_time": 2,
                           "nodes": "a"},
                          {"job_id": 10, "job_state": "PENDING", "comment": "gpucommons-job=4,launch=L4"})],
        "scontrol": ["AccountingStorageType = accounting_storage/none\n"],
    })  # fmt: skip
    backend = SlurmBackend(SlurmConfig(), cli, clock=lambda: 50.0)
    events = backend.adopt([(1, "7"), (2, "8"), (3, "9"), (4, "pending:L4"), (5, "pending:L5")])
    assert [(e.job_id, e.kind, e.backend_ref) for e in events] == [
        (1, "started", "7"), (2, "started", "8"), (2, "finished", "8"), (5, "lost", "pending:L5"),
        (3, "lost", "9"),
    ]  # fmt: skip
    assert not any(c[0] == "sbatch" for c in cli.calls)
    assert backend.poll() == []  # 7 runs, 10 (job 4) still pending: nothing new, nothing unknown


def test_a_job_still_queued_in_slurm_at_restart_is_charged_from_slurms_start_time() -> None:
    """The service restarted while Slurm had not started job 7 yet: its ``started`` event must still
    come, at Slurm's StartTime (555 s after the decision here), or it would be charged from the
    decision. A job Slurm already runs gets ``started`` again at adoption (the engine keeps the later)."""
    cli = ScriptedCli({
        "squeue": [squeue({"job_id": 7, "job_state": "PENDING"},
                          {"job_id": 8, "job_state": "RUNNING", "start_time": 40, "nodes": "h100-1"}),
                   squeue({"job_id": 7, "job_state": "RUNNING", "start_time": 555, "nodes": "h100-2"},
                          {"job_id": 8, "job_state": "RUNNING", "start_time": 40, "nodes": "h100-1"})],
    })  # fmt: skip
    backend = SlurmBackend(SlurmConfig(), cli, clock=lambda: 600.0)
    adopted = backend.adopt([(1, "7"), (2, "8")])
    assert [(e.job_id, e.kind, e.at_s) for e in adopted] == [(2, "started", 40.0)]
    assert [(e.job_id, e.kind, e.at_s, e.backend_ref) for e in backend.poll()] == [(1, "started", 555.0, "7")]
    assert backend.adopt([(1, "7"), (2, "8")]) == backend.adopt([(1, "7"), (2, "8")])  # safe at any step


def test_a_timed_out_sbatch_is_resolved_by_name_and_comment(tmp_path: Path) -> None:
    accepted = {
        "job_id": 77,
        "name": "gpuc-1",
        "job_state": "PENDING",
        "comment": "gpucommons-job=1,launch=L1",
    }
    stranger = {
        "job_id": 76,
        "name": "gpuc-1",
        "job_state": "PENDING",
        "comment": "gpucommons-job=1,launch=L0",
    }
    cli = ScriptedCli({"sbatch": ["TIMEOUT:"], "squeue": [squeue(stranger, accepted)]})
    backend = SlurmBackend(SlurmConfig(accounting=False), cli)
    assert backend.launch(spec(tmp_path, env={"GPUC_LAUNCH_ID": "L1"})) == "77"
    assert [c[0] for c in cli.calls] == ["sbatch", "squeue"]
    # 77 is tracked (neither unknown nor lost); 76, another launch's, belongs to no one here
    assert [(e.kind, e.backend_ref) for e in backend.poll()] == [("unknown", "76")]


def test_a_timed_out_sbatch_that_slurm_does_not_list_is_uncertain(tmp_path: Path) -> None:
    cli = ScriptedCli({"sbatch": ["TIMEOUT:"], "squeue": [squeue(), "TIMEOUT:"]})
    backend = SlurmBackend(SlurmConfig(accounting=False), cli)
    for _ in range(2):  # not listed yet, then the lookup itself times out
        with pytest.raises(LaunchUncertainError, match="no answer within"):
            backend.launch(spec(tmp_path, env={"GPUC_LAUNCH_ID": "L1"}))
    cli.answers["sbatch"] = ["ERROR:sbatch failed (exit 1): Invalid account"]  # a refusal is no doubt
    with pytest.raises(SlurmCommandError, match="Invalid account") as refused:
        backend.launch(spec(tmp_path, env={"GPUC_LAUNCH_ID": "L2"}))
    assert not isinstance(refused.value, LaunchUncertainError)


def test_a_launch_slurm_forgot_is_found_in_sacct_by_name_and_comment() -> None:
    sacct = "91|gpuc-4|COMPLETED|0:0|10|20|h100-1|gpucommons-job=4,launch=L4\n"
    cli = ScriptedCli({"squeue": [squeue()], "sacct": [sacct]})
    backend = SlurmBackend(SlurmConfig(accounting=True), cli)
    events = backend.adopt([(4, "pending:L4")])
    assert [(e.kind, e.backend_ref, e.at_s) for e in events] == [
        ("started", "91", 10.0),
        ("finished", "91", 20.0),
    ]
    assert ("sacct", "-n", "-X", "-P", "-o", "JobIDRaw,JobName,State,ExitCode,Start,End,NodeList,Comment",
            "--name", "gpuc-4", "-S", "now-7days") in cli.calls  # fmt: skip


def test_unknown_running_jobs_hold_their_gpus_unless_set_to_cancel() -> None:
    foreign = {"job_id": 50, "name": "gpuc-9", "job_state": "RUNNING", "nodes": "gn[001-002]",
               "gres_detail": ["gpu:h100:2(IDX:0-1)", "gpu:h100:3(IDX:0-2)"]}  # fmt: skip
    waiting = {"job_id": 51, "name": "gpuc-8", "job_state": "PENDING"}
    cli = ScriptedCli({"squeue": [squeue(foreign, waiting), squeue()]})
    config = SlurmConfig(node_names={"h100-1": "gn001", "h100-2": "gn002"})
    backend = SlurmBackend(config, cli)
    assert isinstance(backend, HoldsForeignGpus) and backend.stops_unknown is False
    assert [(e.kind, e.backend_ref) for e in backend.poll()] == [("unknown", "50"), ("unknown", "51")]
    assert backend.held_gpus() == {"h100-1": 2, "h100-2": 3}
    assert backend.poll() == [] and backend.held_gpus() == {}  # it ended
    assert SlurmBackend(SlurmConfig(unknown_jobs="cancel"), cli).stops_unknown is True
    with pytest.raises(ConfigError, match="unknown_jobs"):
        make_slurm_backend({"unknown_jobs": "ignore"})


def test_cancel_of_a_gone_job_is_quiet() -> None:
    cli = ScriptedCli({"scancel": ["ERROR:scancel failed (exit 1): Invalid job id specified"]})
    SlurmBackend(SlurmConfig(), cli).cancel(1, "99")
    cli.answers["scancel"] = ["ERROR:scancel failed (exit 1): Unable to contact slurm controller"]
    with pytest.raises(SlurmCommandError, match="contact"):
        SlurmBackend(SlurmConfig(), cli).cancel(1, "99")


def test_unavailable_nodes_map_back_to_gpucommons_names() -> None:
    cli = ScriptedCli(
        {
            "sinfo": [
                "gn001|b*|gpu:h100:8|1|1|x|down*\ngn002|b*|gpu:h100:8|1|1|x|idle\nh100-9|b*|x|1|1|x|drained\n"
            ]
        }
    )
    backend = SlurmBackend(SlurmConfig(node_names={"h100-1": "gn001", "h100-2": "gn002"}), cli)
    assert backend.unavailable_nodes() == {"h100-1", "h100-9"}


def test_missing_command_is_a_clear_error() -> None:
    with pytest.raises(SlurmCommandError, match="command not found"):
        SlurmCli(bin_dir="/nonexistent").run(["squeue", "--json"])


def test_service_builds_the_slurm_backend_from_its_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "slurm.toml"
    path.write_text('requeue = true\n[partitions]\nh100 = "gpu"\n[node_names]\n"h100-1" = "gpu-node-7"\n')
    backend = build_backend(Settings(home=tmp_path, backend="slurm", slurm_config=path))
    assert isinstance(backend, SlurmBackend) and backend.stops_unknown is False
    assert (backend.config.requeue, backend.config.slurm_node("h100-1")) == (True, "gpu-node-7")
    for text, message in (("partitions = 3\n", "partitions"), ("nope = 1\n", "nope"), ("[x", "slurm.toml")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            build_backend(Settings(home=tmp_path, backend="slurm", slurm_config=path))
    with pytest.raises(ConfigError, match="cannot read"):
        build_backend(Settings(home=tmp_path, backend="slurm", slurm_config=tmp_path / "missing.toml"))
