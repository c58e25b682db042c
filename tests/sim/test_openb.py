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
