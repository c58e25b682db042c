"""Parsers for Slurm's command output, kept free of I/O so they can be tested on captured text.

``squeue --json`` is read tolerantly: Slurm 22.05 (OpenAPI v0.0.38) gives ``job_state`` as a string,
``exit_code`` as a raw wait status and times as integers; later releases wrap the same values in lists
and ``{"set": .., "number": ..}`` objects. Text formats are requested with ``|`` separators and
``SLURM_TIME_FORMAT=%s`` so times are epoch seconds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gpucommons.backends.slurm_cli import SlurmCommandError

# Node states in which Slurm will not start new work on a node.
UNAVAILABLE_NODE_STATES = frozenset(
    {"down", "drain", "drained", "draining", "fail", "failing", "inval", "not_responding", "maint"}
)
_STATE_SUFFIXES = "*~#!%$@^-"


@dataclass(frozen=True, slots=True)
class SlurmJob:
    """One Slurm job as gpucommons needs it. ``exit_status``/``exit_signal`` are None while unknown."""

    slurm_id: str
    name: str
    state: str
    restarts: int = 0
    exit_status: int | None = None
    exit_signal: int = 0
    start_s: float | None = None
    end_s: float | None = None
    nodes: str = ""
    comment: str = ""
    reason: str = ""
    gres_detail: tuple[str, ...] = ()  # per allocated node, in ``nodes`` order: ``gpu:h100:2(IDX:0-1)``

    @property
    def exit_code(self) -> int | None:
        """Shell convention: the exit status, or 128 + signal when a signal ended the job."""
        if self.exit_status is None:
            return None
        return 128 + self.exit_signal if self.exit_signal else self.exit_status


@dataclass(frozen=True, slots=True)
class SlurmNode:
    """One node from ``sinfo -N``, with every partition it belongs to merged into ``partitions``."""

    name: str
    partitions: tuple[str, ...]
    gres: str
    cpus: int
    memory_mb: int
    features: str
    state: str


def decode_wait_status(raw: int) -> tuple[int, int]:
    """A raw wait status (``768``) as (exit status, signal): ``(3, 0)``."""
    return (raw >> 8) & 0xFF, raw & 0x7F


def _number(value: Any) -> int | None:
    """An integer from v0.0.38 (plain) or later (``{"set": true, "number": n}``) JSON."""
    if isinstance(value, dict):
        return int(value["number"]) if value.get("set", True) and "number" in value else None
    if isinstance(value, bool) or value is None:
        return None
    return int(value)


def _time_s(value: Any) -> float | None:
    number = _number(value)
    return float(number) if number else None


def _state(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else "UNKNOWN"
    return str(value)


def _exit(value: Any) -> tuple[int | None, int]:
    if isinstance(value, dict):  # later layout: {"status": [...], "return_code": {...}, "signal": {...}}
        code = _number(value.get("return_code"))
        signal = _number((value.get("signal") or {}).get("id")) or 0
        return code, signal
    raw = _number(value)
    if raw is None:
        return None, 0
    return decode_wait_status(raw)


def parse_squeue_json(text: str) -> list[SlurmJob]:
    """Every job in ``squeue --json`` output (22.05 ignores filters: the caller filters)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SlurmCommandError(f"squeue --json: not valid JSON ({exc.msg})") from None
    jobs = []
    for raw in data.get("jobs", []):
        status, signal = _exit(raw.get("exit_code"))
        jobs.append(
            SlurmJob(
                slurm_id=str(raw["job_id"]),
                name=str(raw.get("name", "")),
                state=_state(raw.get("job_state", "UNKNOWN")),
                restarts=_number(raw.get("restart_cnt")) or 0,
                exit_status=status,
                exit_signal=signal,
                start_s=_time_s(raw.get("start_time")),
                end_s=_time_s(raw.get("end_time")),
                nodes=str(raw.get("nodes", "")),
                comment=str(raw.get("comment", "")),
                reason=str(raw.get("state_reason", "")),
                gres_detail=tuple(str(g) for g in raw.get("gres_detail") or ()),
            )
        )
    return jobs


def expand_hostlist(text: str) -> list[str]:
    """Slurm's compressed host list as names: ``h100-[1-2,4],a100-1`` -> h100-1, h100-2, h100-4,
    a100-1 (zero padding kept: ``n[08-10]``). Raises ``ValueError`` on a form it cannot read."""
    names: list[str] = []
    for item in re.findall(r"[^,\[]+(?:\[[^\]]*\][^,\[]*)*", text.strip()):
        match = re.fullmatch(r"([^\[\]]*)\[([^\]]+)\]([^\[\]]*)", item)
        if match is None:
            if "[" in item or "]" in item:
                raise ValueError(f"unreadable host list {text!r}")
            names.append(item)
            continue
        prefix, ranges, suffix = match.groups()
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            if not low.isdigit() or (high and not high.isdigit()):
                raise ValueError(f"unreadable host list {text!r}")
            width = len(low) if low.startswith("0") else 0
            for n in range(int(low), int(high or low) + 1):
                names.append(f"{prefix}{str(n).zfill(width)}{suffix}")
    return names


def gres_gpu_count(detail: str) -> int | None:
    """GPUs in one node's ``gres_detail`` entry (``gpu:h100:2(IDX:0-1)`` -> 2, ``gpu:1`` -> 1); None
    when it names no GPUs."""
    total = None
    for item in re.split(r",(?![^(]*\))", detail):
        fields = re.sub(r"\(.*\)$", "", item.strip()).split(":")
        if fields[0] == "gpu" and len(fields) >= 2 and fields[-1].isdigit():
            total = (total or 0) + int(fields[-1])
    return total


def held_gpus(job: SlurmJob) -> dict[str, int | None]:
    """GPUs a running job holds per node (Slurm node names): counts from ``gres_detail``, or ``None``
    (the whole node) where the detail is missing or unreadable."""
    try:
        nodes = expand_hostlist(job.nodes) if job.nodes else []
    except ValueError:
        return {}
    counts: list[int | None] = [gres_gpu_count(d) for d in job.gres_detail]
    if len(counts) != len(nodes):
        counts = [None] * len(nodes)
    return dict(zip(nodes, counts, strict=True))


def _exit_pair(text: str) -> tuple[int | None, int]:
    """``3:0`` (exit status:signal) as used by scontrol and sacct."""
    match = re.fullmatch(r"(\d+):(\d+)", text.strip())
    return (int(match[1]), int(match[2])) if match else (None, 0)


def _epoch(text: str) -> float | None:
    return float(text) if text.strip().isdigit() and int(text) > 0 else None


def parse_scontrol_job(line: str) -> SlurmJob:
    """One line of ``scontrol show job -o`` (with ``SLURM_TIME_FORMAT=%s``)."""
    fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    if "JobId" not in fields:
        raise SlurmCommandError(f"scontrol show job: unexpected output {line[:80]!r}")
    status, signal = _exit_pair(fields.get("ExitCode", ""))
    return SlurmJob(
        slurm_id=fields["JobId"],
        name=fields.get("JobName", ""),
        state=fields.get("JobState", "UNKNOWN"),
        restarts=int(fields.get("Restarts", "0") or 0),
        exit_status=status,
        exit_signal=signal,
        start_s=_epoch(fields.get("StartTime", "")),
        end_s=_epoch(fields.get("EndTime", "")),
        nodes=fields.get("NodeList", ""),
        comment=fields.get("Comment", ""),
        reason=fields.get("Reason", ""),
    )


SACCT_FORMAT = "JobIDRaw,JobName,State,ExitCode,Start,End,NodeList,Comment"


def parse_sacct(text: str) -> list[SlurmJob]:
    """``sacct -n -X -P -o`` + ``SACCT_FORMAT``; a state like ``CANCELLED by 0`` keeps its first word.
    The comment (eighth field) is empty where the cluster does not store job comments."""
    jobs = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 7:
            continue
        comment = "|".join(parts[7:])
        status, signal = _exit_pair(parts[3])
        jobs.append(
            SlurmJob(
                slurm_id=parts[0],
                name=parts[1],
                state=parts[2].split()[0] if parts[2].strip() else "UNKNOWN",
                exit_status=status,
                exit_signal=signal,
                start_s=_epoch(parts[4]),
                end_s=_epoch(parts[5]),
                nodes=parts[6],
                comment=comment,
            )
        )
    return jobs


SINFO_FORMAT = "%N|%P|%G|%c|%m|%f|%T"


def parse_sinfo_nodes(text: str) -> list[SlurmNode]:
    """``sinfo -N -h -o SINFO_FORMAT``: one line per node *and partition*, merged into one per node,
    in first-seen order. The default partition's trailing ``*`` is dropped."""
    by_name: dict[str, SlurmNode] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 7:
            continue
        name, partition, gres, cpus, memory, features, state = (p.strip() for p in parts[:7])
        partition = partition.rstrip("*")
        seen = by_name.get(name)
        if seen is not None:
            if partition not in seen.partitions:
                by_name[name] = SlurmNode(
                    name, (*seen.partitions, partition), seen.gres, seen.cpus, seen.memory_mb,
                    seen.features, seen.state,
                )  # fmt: skip
            continue
        by_name[name] = SlurmNode(
            name=name,
            partitions=(partition,),
            gres=gres,
            cpus=int(cpus) if cpus.isdigit() else 0,
            memory_mb=int(memory) if memory.isdigit() else 0,
            features=features,
            state=state,
        )
    return list(by_name.values())


def node_unavailable(state: str) -> bool:
    """Whether an ``sinfo %T`` state (``down*``, ``draining``, ``mixed+drain``...) keeps new work off."""
    if state.endswith("*"):  # not responding
        return True
    parts = {p.rstrip(_STATE_SUFFIXES).lower() for p in state.split("+")}
    return bool(parts & UNAVAILABLE_NODE_STATES)


def parse_gpu_gres(gres: str) -> tuple[str | None, int]:
    """The GPU part of a node's GRES: ``gpu:h100:8(S:0-1)`` -> ``("h100", 8)``; ``gpu:8`` -> ``(None, 8)``;
    no GPUs -> ``(None, 0)``. Two GPU types on one node cannot form one pool: an error."""
    found: list[tuple[str | None, int]] = []
    for item in re.split(r",(?![^(]*\))", gres):
        fields = re.sub(r"\(.*\)$", "", item.strip()).split(":")
        if fields[0] != "gpu" or len(fields) < 2:
            continue
        count = fields[-1]
        if not count.isdigit():
            continue
        found.append((fields[1].lower() if len(fields) >= 3 else None, int(count)))
    if not found:
        return None, 0
    if len({t for t, _ in found}) > 1:
        raise SlurmCommandError(f"node GRES {gres!r} mixes GPU types; gpucommons pools hold one model")
    return found[0][0], sum(c for _, c in found)
