"""Trace readers: the Philly CSV (a temp file, and the real trace when present) and the seeded
synthetic generator."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from pathlib import Path

import pytest

from gpucommons.errors import InvalidRequestError, TraceError
from gpucommons.sim.traces.philly import read_philly
from gpucommons.sim.traces.synthetic import SyntheticSpec, generate
from tests.conftest import REPO_ROOT

HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"
PHILLY_CSV = REPO_ROOT.parent / "shared" / "data" / "traces" / "philly-derived" / "philly.csv"


def write(tmp_path: Path, text: str | bytes, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_rows_become_jobs_in_submit_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "2017-10-09 07:01:55,66.0,1,66.0,vc1\n"
        + "2017-10-09 06:13:03,2951.0,4,11804.0,vc2\n"
        + "2017-10-09 07:01:55,10.0,2,20.0,vc1\n",
    )
    jobs = read_philly(path)
    assert [j.id for j in jobs] == [2, 1, 3]  # 1-based row numbers, earliest first, ties in file order
    assert [j.submit_s for j in jobs] == [0.0, 2932.0, 2932.0]
    assert [(j.tenant, j.gpus, j.duration_s, j.estimate_s) for j in jobs] == [
        ("vc2", 4, 2951.0, 2951.0),
        ("vc1", 1, 66.0, 66.0),
        ("vc1", 2, 10.0, 10.0),
    ]
    assert [j.id for j in read_philly(path, limit_jobs=2)] == [2, 1]


def test_header_only_gives_no_jobs(tmp_path: Path) -> None:
    assert read_philly(write(tmp_path, HEADER)) == []


@pytest.mark.parametrize(
    ("name", "text", "want_in_message"),
    [
        ("bad timestamp", HEADER + "yesterday,66.0,1,66.0,vc1\n", "trace.csv:2"),
        ("negative duration", HEADER + "2017-10-09 07:01:55,-5,1,66.0,vc1\n", "trace.csv:2"),
        ("zero GPUs", HEADER + "2017-10-09 07:01:55,5,0,0,vc1\n", "trace.csv:2"),
        ("no tenant", HEADER + "2017-10-09 07:01:55,5,1,5,\n", "trace.csv:2"),
        ("short row", HEADER + "2017-10-09 07:01:55,5\n", "trace.csv:2"),
        ("missing column", "timestamp,duration,num_gpus,gpu_time\n2017-10-09 07:01:55,5,1,5\n", "cluster"),
        ("empty file", "", "missing column"),
        ("not text", b"\xff\xfe\x00\x01garbage\n", "UTF-8"),
    ],
)
def test_malformed_input_raises_one_line_trace_error(
    tmp_path: Path, name: str, text: str | bytes, want_in_message: str
) -> None:
    with pytest.raises(TraceError) as err:
        read_philly(write(tmp_path, text))
    message = str(err.value)
    assert want_in_message in message, name
    assert "\n" not in message


def test_missing_file_raises_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read trace"):
        read_philly(tmp_path / "absent.csv")


SPEC = SyntheticSpec(jobs=2_000, cluster_gpus=512)


def test_synthetic_same_seed_same_jobs() -> None:
    assert generate(SPEC, seed=7) == generate(SPEC, seed=7)


def test_synthetic_different_seed_different_jobs() -> None:
    first, second = generate(SPEC, seed=7), generate(SPEC, seed=8)
    assert len(first) == len(second) == SPEC.jobs
    assert first != second
    assert [j.submit_s for j in first] != [j.submit_s for j in second]


def test_synthetic_shape() -> None:
    jobs = generate(SyntheticSpec(jobs=20_000, cluster_gpus=2_048), seed=1)
    assert [j.id for j in jobs] == list(range(1, 20_001))
    submits = [j.submit_s for j in jobs]
    assert submits == sorted(submits) and submits[0] > 0
    single = sum(j.gpus == 1 for j in jobs) / len(jobs)
    assert single == pytest.approx(0.932, abs=0.01)
    assert statistics.median(j.duration_s for j in jobs) == pytest.approx(1_144.0, rel=0.1)
    assert all(1.0 <= j.duration_s <= 14 * 86_400.0 and j.estimate_s == j.duration_s for j in jobs)
    tenants = Counter(j.tenant for j in jobs)
    assert len(tenants) == 15 and tenants.most_common(1)[0][0] == "t00"


@pytest.mark.parametrize(
    "spec",
    [
        SyntheticSpec(jobs=10, cluster_gpus=0),
        SyntheticSpec(jobs=0, cluster_gpus=8),
        SyntheticSpec(jobs=-3, cluster_gpus=8),
    ],
)
def test_synthetic_rejects_empty_requests(spec: SyntheticSpec) -> None:
    with pytest.raises(InvalidRequestError):
        generate(spec, seed=1)


@pytest.mark.skipif(not PHILLY_CSV.is_file(), reason=f"Philly trace not found at {PHILLY_CSV}")
def test_real_philly_trace_matches_its_published_statistics() -> None:
    jobs = read_philly(PHILLY_CSV)
    assert len(jobs) == 82_247
    assert len({j.tenant for j in jobs}) == 15
    assert sum(j.gpus == 1 for j in jobs) / len(jobs) == pytest.approx(0.932, abs=0.001)
    durations = [j.duration_s for j in jobs]
    assert statistics.median(durations) == pytest.approx(1_144.0, abs=1.0)
    assert statistics.fmean(durations) == pytest.approx(13_136.0, rel=0.001)
    assert max(j.gpus for j in jobs) == 128
    assert jobs[0].submit_s == 0.0 and all(a.submit_s <= b.submit_s for a, b in itertools.pairwise(jobs))
