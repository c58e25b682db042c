"""The openb reader on small files: pools of identical nodes, pods as jobs, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpucommons.errors import TraceError
from gpucommons.sim.traces.openb import read_openb_cluster, read_openb_pods

NODES = """sn,cpu_milli,memory_mib,gpu,model
n0,64000,262144,2,P100
n1,64000,262144,2,P100
n2,96000,393216,8,G2
n3,32000,131072,0,
"""
PODS = """name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,\
scheduled_time
p0,12000,16384,1,1000,,LS,Running,0,100,0
p1,6000,12288,1,460,P100|T4,BE,Running,5,50,5
p2,4000,8192,0,0,,LS,Running,7,9,7
p3,8000,8192,8,1000,G2,LS,Pending,9,,
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_nodes_become_pools_of_identical_nodes(tmp_path: Path) -> None:
    cluster = read_openb_cluster(_write(tmp_path, "nodes.csv", NODES))
    assert [
        (p.name, p.node_count, p.gpus_per_node, p.cpus_per_node, p.memory_gib_per_node) for p in cluster.pools
    ] == [("p100-2g-64c-256g", 2, 2, 64, 256), ("g2-8g-96c-384g", 1, 8, 96, 384)]
    assert cluster.total_gpus == 12


def test_pods_become_jobs(tmp_path: Path) -> None:
    jobs = read_openb_pods(_write(tmp_path, "pods.csv", PODS))
    share = jobs[1]
    assert share.shared and share.gpu_milli == 460 and share.accepted_models == {"P100", "T4"}
    assert (share.cpu_milli, share.memory_mib, share.submit_s, share.duration_s) == (6000, 12288, 5.0, 45.0)
    assert jobs[2].gpus == 0 and not jobs[2].shared
    assert jobs[3].gpus == 8 and jobs[3].duration_s == 1.0
    assert len(read_openb_pods(_write(tmp_path, "pods.csv", PODS), limit_jobs=2)) == 2


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("sn,cpu_milli\nn0,1\n", "missing column"),
        ("sn,cpu_milli,memory_mib,gpu,model\nn0,x,1,1,T4\n", "malformed cpu_milli"),
        ("sn,cpu_milli,memory_mib,gpu,model\nn0,1000,1024,1,Z9\n", "unknown GPU model"),
    ],
)
def test_bad_node_files_give_one_line_errors(tmp_path: Path, text: str, want: str) -> None:
    with pytest.raises(TraceError, match=want) as err:
        read_openb_cluster(_write(tmp_path, "nodes.csv", text))
    assert "\n" not in str(err.value)


def test_bad_pod_share_is_rejected(tmp_path: Path) -> None:
    text = PODS.splitlines()[0] + "\np0,1,1,2,500,,LS,Running,0,1,0\n"
    with pytest.raises(TraceError, match="gpu_milli 500 does not fit num_gpu 2"):
        read_openb_pods(_write(tmp_path, "pods.csv", text))


def test_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read trace"):
        read_openb_pods(tmp_path / "nope.csv")


# The release's sampled pod lists (e.g. openb_pod_list_cpu050.csv) have only these five columns; the rows
# below are made up in that format.
SHORT_PODS = """name,cpu_milli,memory_mib,num_gpu,gpu_milli
s0,8000,32768,1,1000
s1,4000,15000,1,250
s2,16000,65536,0,0
s3,32000,131072,2,1000
"""
# The paper simulator's copies without memory (openb_pod_list_nomem.csv's header), made-up rows.
NOMEM_PODS = """name,cpu_milli,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,\
scheduled_time
m0,6000,1,500,T4,BE,Running,10,70,10
m1,2000,0,0,,LS,Running,20,30,20
"""


def test_five_column_pod_lists_are_read(tmp_path: Path) -> None:
    jobs = read_openb_pods(_write(tmp_path, "pods.csv", SHORT_PODS))
    assert [(j.id, j.gpus, j.gpu_milli, j.shared, j.cpu_milli, j.memory_mib) for j in jobs] == [
        (1, 1, 1000, False, 8000, 32768),
        (2, 1, 250, True, 4000, 15000),
        (3, 0, 1000, False, 16000, 65536),
        (4, 2, 1000, False, 32000, 131072),
    ]
    assert all(j.accepted_models == frozenset() and j.tenant == "default" for j in jobs)
    assert all((j.submit_s, j.duration_s) == (0.0, 1.0) for j in jobs)  # no times: the fill ignores them


def test_pod_lists_without_memory_are_read(tmp_path: Path) -> None:
    share, cpu_only = read_openb_pods(_write(tmp_path, "pods.csv", NOMEM_PODS))
    assert (share.gpu_milli, share.memory_mib, share.tenant) == (500, 0, "BE")
    assert share.accepted_models == frozenset({"T4"})
    assert (share.submit_s, share.duration_s) == (10.0, 60.0)
    assert cpu_only.gpus == 0 and cpu_only.memory_mib == 0


def test_a_pod_list_without_gpu_columns_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"missing column.*num_gpu"):
        read_openb_pods(_write(tmp_path, "pods.csv", "name,cpu_milli,memory_mib\np,1,1\n"))


def test_the_fill_experiment_runs_on_a_five_column_list(tmp_path: Path) -> None:
    from gpucommons.policy.registry import build_placer
    from gpucommons.sim.fill import run_fill

    cluster = read_openb_cluster(_write(tmp_path, "nodes.csv", NODES))
    pods = read_openb_pods(_write(tmp_path, "pods.csv", SHORT_PODS))
    result = run_fill(pods, cluster, build_placer("fgd"), 1.0, seed=42)
    assert result.placed > 0 and 0 < result.gpu_allocation_ratio <= 1
