"""Parsers of Slurm output, on text captured from the Slurm 22.05 test cluster (no Slurm needed)."""

from __future__ import annotations

import json

import pytest

from gpucommons.backends.slurm_inventory import (
    backend_toml,
    catalog_model,
    cluster_toml,
    inventory_from_nodes,
)
from gpucommons.backends.slurm_parse import (
    SlurmJob,
    decode_wait_status,
    expand_hostlist,
    gres_gpu_count,
    held_gpus,
    node_unavailable,
    parse_gpu_gres,
    parse_sacct,
    parse_scontrol_job,
    parse_sinfo_nodes,
    parse_squeue_json,
)
from gpucommons.clusterfile import parse_cluster
from gpucommons.errors import ConfigError

SINFO = """\
a100-1|a100|gpu:a100:4|16|128000|a100|idle
a100-1|gpu*|gpu:a100:4|16|128000|a100|idle
a100-1|urgent|gpu:a100:4|16|128000|a100|idle
a100-2|a100|gpu:a100:4|16|128000|a100|idle
a100-2|gpu*|gpu:a100:4|16|128000|a100|idle
h100-1|h100|gpu:h100:8|32|256000|h100|idle
h100-1|gpu*|gpu:h100:8|32|256000|h100|idle
h100-1|urgent|gpu:h100:8|32|256000|h100|idle
h100-2|h100|gpu:h100:8|32|256000|h100|down
h100-2|gpu*|gpu:h100:8|32|256000|h100|down
h100-3|h100|gpu:h100:8(S:0-1)|32|256000|h100|mixed
h100-4|h100|gpu:h100:8|32|256000|h100|draining
h100-10|h100|gpu:h100:8|32|256000|h100|idle
cpu-1|cpu|(null)|8|16000|(null)|idle
"""

SCONTROL = (
    "JobId=2 JobName=gpuc-8 UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Requeue=1 Restarts=1 "
    "ExitCode=3:0 StartTime=1795472122 EndTime=1795472130 NodeList=h100-3 Comment=gpucommons-job=8"
)


def _squeue(*jobs: dict[str, object]) -> str:
    return json.dumps({"meta": {}, "errors": [], "jobs": list(jobs)})


def test_squeue_json_v0038() -> None:
    text = _squeue(
        {"job_id": 1, "name": "gpuc-7", "job_state": "FAILED", "exit_code": 768, "restart_cnt": 0,
         "start_time": 1795472122, "end_time": 1795472123, "nodes": "h100-2",
         "comment": "gpucommons-job=7", "state_reason": "NonZeroExitCode"},
        {"job_id": 2, "name": "x", "job_state": "PENDING", "exit_code": 0, "restart_cnt": 1,
         "start_time": 0, "end_time": 0, "nodes": ""},
    )  # fmt: skip
    failed, pending = parse_squeue_json(text)
    assert (failed.slurm_id, failed.state, failed.exit_code, failed.start_s, failed.end_s) == (
        "1", "FAILED", 3, 1795472122.0, 1795472123.0,
    )  # fmt: skip
    assert (pending.restarts, pending.start_s, pending.exit_status) == (1, None, 0)


def test_squeue_json_later_layout() -> None:
    text = _squeue(
        {"job_id": 5, "name": "gpuc-1", "job_state": ["CANCELLED"], "restart_cnt": {"set": True, "number": 0},
         "exit_code": {"status": ["SIGNALED"], "return_code": {"set": True, "number": 0},
                       "signal": {"id": {"set": True, "number": 15}}},
         "start_time": {"set": True, "number": 100}, "end_time": {"set": True, "number": 160}},
    )  # fmt: skip
    (job,) = parse_squeue_json(text)
    assert (job.state, job.exit_code, job.start_s, job.end_s) == ("CANCELLED", 143, 100.0, 160.0)


def test_squeue_json_garbage_is_a_gpuc_error() -> None:
    with pytest.raises(Exception, match="not valid JSON"):
        parse_squeue_json("<html>")


@pytest.mark.parametrize(("raw", "want"), [(0, (0, 0)), (768, (3, 0)), (15, (0, 15)), (256 * 137, (137, 0))])
def test_decode_wait_status(raw: int, want: tuple[int, int]) -> None:
    assert decode_wait_status(raw) == want


def test_scontrol_job_line() -> None:
    job = parse_scontrol_job(SCONTROL)
    assert (job.slurm_id, job.name, job.state, job.restarts, job.exit_code) == ("2", "gpuc-8", "FAILED", 1, 3)
    assert (job.start_s, job.end_s, job.nodes, job.comment) == (
        1795472122.0,
        1795472130.0,
        "h100-3",
        "gpucommons-job=8",
    )


def test_sacct_lines() -> None:
    text = (
        "12|gpuc-4|CANCELLED by 0|0:15|1700000000|1700000060|h100-1\n"
        "13|gpuc-5|COMPLETED|0:0|1700000001|Unknown|a100-1\n"
    )
    cancelled, completed = parse_sacct(text)
    assert (cancelled.state, cancelled.exit_code, cancelled.end_s) == ("CANCELLED", 143, 1700000060.0)
    assert (completed.state, completed.exit_code, completed.end_s) == ("COMPLETED", 0, None)


def test_sinfo_merges_partitions_per_node() -> None:
    nodes = {n.name: n for n in parse_sinfo_nodes(SINFO)}
    assert len(nodes) == 8
    assert nodes["a100-1"].partitions == ("a100", "gpu", "urgent")
    assert (nodes["h100-1"].cpus, nodes["h100-1"].memory_mb, nodes["h100-1"].gres) == (
        32,
        256000,
        "gpu:h100:8",
    )


@pytest.mark.parametrize(
    ("state", "want"),
    [
        ("idle", False),
        ("mixed", False),
        ("allocated", False),
        ("down", True),
        ("down*", True),
        ("drained", True),
        ("draining", True),
        ("drain", True),
        ("fail", True),
        ("idle*", True),
        ("mixed+drain", True),
        ("idle~", False),
    ],
)
def test_node_unavailable(state: str, want: bool) -> None:
    assert node_unavailable(state) is want


@pytest.mark.parametrize(
    ("gres", "want"),
    [
        ("gpu:h100:8", ("h100", 8)),
        ("gpu:H100:8(S:0-1)", ("h100", 8)),
        ("gpu:4", (None, 4)),
        ("(null)", (None, 0)),
        ("gpu:a100:2(S:0),gpu:a100:2(S:1)", ("a100", 4)),
        ("shard:h100:16,gpu:h100:8", ("h100", 8)),
    ],
)
def test_parse_gpu_gres(gres: str, want: tuple[str | None, int]) -> None:
    assert parse_gpu_gres(gres) == want


def test_inventory_groups_identical_nodes_into_pools() -> None:
    inventory = inventory_from_nodes(parse_sinfo_nodes(SINFO), name="test", site="daejeon")
    pools = {p.name: (p.model, p.nodes, p.gpus_per_node, p.cpus_per_node, p.memory_gib_per_node)
             for p in inventory.spec.pools}  # fmt: skip
    assert pools == {"a100": ("A100", 2, 4, 16, 125), "h100": ("H100", 5, 8, 32, 250)}
    assert inventory.partitions == {"a100": "a100", "h100": "h100"}
    assert inventory.skipped == ("cpu-1",)
    # natural order: h100-10 is the fifth h100 node, not the second
    assert inventory.node_names["h100-5"] == "h100-10"
    cluster = parse_cluster(cluster_toml(inventory.spec), "imported")
    assert cluster.total_gpus == 2 * 4 + 5 * 8
    assert [n.name for n in cluster.nodes if n.pool == "h100"] == [f"h100-{i}" for i in range(1, 6)]
    assert '"h100" = "h100"' in backend_toml(inventory)


def test_inventory_renames_nodes_that_do_not_follow_pool_naming() -> None:
    text = "gn001|batch*|gpu:h100:8|64|512000|(null)|idle\ngn002|batch*|gpu:h100:8|64|512000|(null)|idle\n"
    inventory = inventory_from_nodes(parse_sinfo_nodes(text))
    assert inventory.node_names == {"h100-1": "gn001", "h100-2": "gn002"}
    assert inventory.backend_settings() == {
        "partitions": {"h100": "batch"},
        "node_names": inventory.node_names,
    }


def test_catalog_models() -> None:
    assert catalog_model("h100", {}) == "H100"
    assert catalog_model("nvidia_a100-sxm4-80gb", {}) == "A100"
    assert catalog_model("mi250", {"mi250": "MI300X"}) == "MI300X"
    with pytest.raises(ConfigError, match="--model mi250=MODEL"):
        catalog_model("mi250", {})
    with pytest.raises(ConfigError, match="untyped"):
        catalog_model(None, {})


def test_inventory_of_cpu_only_cluster_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no nodes with GPUs"):
        inventory_from_nodes(parse_sinfo_nodes("cpu-1|cpu*|(null)|8|16000|(null)|idle\n"))


def test_host_lists_and_gres_detail() -> None:
    assert expand_hostlist("h100-[1-2,4],a100-1") == ["h100-1", "h100-2", "h100-4", "a100-1"]
    assert expand_hostlist("n[08-10]") == ["n08", "n09", "n10"]
    with pytest.raises(ValueError, match="host list"):
        expand_hostlist("n[1-x]")
    assert [gres_gpu_count(d) for d in ("gpu:h100:2(IDX:0-1)", "gpu:1", "craynetwork:1")] == [2, 1, None]
    running = SlurmJob("5", "gpuc-1", "RUNNING", nodes="h100-[1-2]", gres_detail=("gpu:h100:8(IDX:0-7)",))
    assert held_gpus(running) == {"h100-1": None, "h100-2": None}  # detail does not cover each node
