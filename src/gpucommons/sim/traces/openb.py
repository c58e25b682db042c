"""Reader for the Alibaba GPU-sharing trace ``cluster-trace-gpu-v2023`` ("openb", Weng et al. ATC'23).

Nodes (``openb_node_list_gpu_node.csv``: ``sn,cpu_milli,memory_mib,gpu,model``) become a ``Cluster`` whose
pools are groups of identical nodes (same model, GPU count, CPU and memory), named like
``g2-8g-96c-384g``, in order of first appearance. CPU is rounded down to whole cores and memory to GiB
(every openb node is a whole number of both). Pods (``openb_pod_list_default.csv`` and the release's
variants, ``openb_pod_list_cpu050.csv`` ...) become ``Job``s: ``num_gpu`` and ``gpu_milli`` (a share when
``num_gpu == 1`` and ``gpu_milli < 1000``), ``gpu_spec`` "A|B" as ``accepted_models``, ``cpu_milli`` and
``memory_mib``; ``creation_time`` is ``submit_s`` and ``deletion_time - creation_time`` the duration
(pods never scheduled get their creation-to-deletion span too). Tenants are the QoS class. Job ids are
1-based row numbers.

Only ``name``, ``cpu_milli``, ``num_gpu`` and ``gpu_milli`` are required. The default list carries every
column; pod lists of the release may carry only ``name,cpu_milli,memory_mib,num_gpu,gpu_milli``, and the
paper simulator's own copies may lack ``memory_mib`` (``openb_pod_list_nomem.csv``). A missing
``gpu_spec`` means any model, a missing ``qos`` the tenant ``default``, a missing ``memory_mib`` no memory
request, and a missing ``creation_time`` submission at 0 with a 1 s duration: such lists serve the fill
experiment, which ignores times.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site
from gpucommons.domain.job import Job
from gpucommons.errors import TraceError

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "num_gpu", "gpu_milli")  # required; the others are optional
NODE_FILE = "openb_node_list_gpu_node.csv"
POD_FILE = "openb_pod_list_default.csv"


def _rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise TraceError(f"cannot read trace {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(f"{path}: missing column(s) {', '.join(missing)}")
        yield from enumerate(reader, start=2)


def _int(path: Path, line: int, row: dict[str, str], column: str, default: int | None = None) -> int:
    text = (row.get(column) or "").strip()
    if not text and default is not None:
        return default
    try:
        value = int(float(text))
    except ValueError:
        raise TraceError(f"{path}:{line}: malformed {column} {text!r}") from None
    if value < 0:
        raise TraceError(f"{path}:{line}: negative {column} {value}")
    return value


def read_openb_cluster(path: Path, name: str = "openb") -> Cluster:
    """The GPU nodes of ``path`` as a cluster of identical-node pools at one site."""
    counts: dict[tuple[str, int, int, int], int] = {}
    for line, row in _rows(path, NODE_COLUMNS):
        model = (row.get("model") or "").strip()
        gpus = _int(path, line, row, "gpu")
        if not model or gpus == 0:
            continue  # a CPU-only node: not part of the GPU pool
        if model not in CATALOG:
            raise TraceError(f"{path}:{line}: unknown GPU model {model!r}")
        cores = _int(path, line, row, "cpu_milli") // 1000
        mem_gib = _int(path, line, row, "memory_mib") // 1024
        if cores == 0 or mem_gib == 0:
            raise TraceError(f"{path}:{line}: a GPU node needs CPU and memory")
        key = (model, gpus, cores, mem_gib)
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        raise TraceError(f"{path}: no GPU nodes")
    pools = tuple(
        Pool(
            name=f"{model.lower()}-{gpus}g-{cores}c-{mem}g",
            site=name,
            model=CATALOG[model],
            node_count=n,
            gpus_per_node=gpus,
            cpus_per_node=cores,
            memory_gib_per_node=mem,
        )
        for (model, gpus, cores, mem), n in counts.items()
    )
    return Cluster.build(name, (Site(name=name),), pools)


def read_openb_pods(path: Path, limit_jobs: int | None = None) -> list[Job]:
    """The pods of ``path`` as jobs, in file order (first ``limit_jobs`` rows when given)."""
    jobs: list[Job] = []
    for line, row in _rows(path, POD_COLUMNS):
        if limit_jobs is not None and len(jobs) >= limit_jobs:
            break
        gpus = _int(path, line, row, "num_gpu")
        milli = _int(path, line, row, "gpu_milli", default=1000 if gpus else 0)
        if (gpus > 1 and milli != 1000) or milli > 1000 or (gpus and milli == 0):
            raise TraceError(f"{path}:{line}: gpu_milli {milli} does not fit num_gpu {gpus}")
        created = _int(path, line, row, "creation_time") if "creation_time" in row else 0
        deleted = (
            _int(path, line, row, "deletion_time", default=created + 1)
            if "deletion_time" in row
            else created + 1
        )
        duration = float(max(1, deleted - created))
        spec = (row.get("gpu_spec") or "").strip()
        jobs.append(
            Job(
                id=line - 1,
                tenant=(row.get("qos") or "default").strip() or "default",
                gpus=gpus,
                submit_s=float(created),
                duration_s=duration,
                estimate_s=duration,
                accepted_models=frozenset(m for m in spec.split("|") if m),
                gpu_milli=milli if gpus else 1000,
                cpu_milli=_int(path, line, row, "cpu_milli"),
                memory_mib=_int(path, line, row, "memory_mib") if "memory_mib" in row else 0,
            )
        )
    return jobs
