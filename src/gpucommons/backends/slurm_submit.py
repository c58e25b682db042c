"""Configuration of the Slurm backend and the translation of a ``LaunchSpec`` into an sbatch call.

The translation is a pure function (``build_submission``) so every flag can be checked without Slurm.
gpucommons is the scheduler: the job is pinned to exactly the nodes the policy chose (``--nodelist``,
``-N``) with a typed per-node GRES request, and Slurm only executes it. Its logs are appended to
(``--open-mode=append``) and a rerun's batch script first prints its header line
(``backends.run_header``), so each run's output stays, separated from the one before.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpucommons.backends.run_header import header_shell
from gpucommons.engine.ports import CHECKPOINT_FILE_ENV, LaunchSpec, checkpoint_file
from gpucommons.errors import ConfigError, InvalidRequestError

# The engine's launch id (also read by the local backend): lets adopt() resolve a "pending:<id>" reference
# recorded before a crash to the Slurm job that was submitted, through the job's comment.
LAUNCH_ID_ENV = "GPUC_LAUNCH_ID"
# Per-job override of the requeue policy, read from (and removed from) ``LaunchSpec.env``: "1" or "0".
REQUEUE_ENV = "GPUC_SLURM_REQUEUE"


class SlurmConfig(BaseModel):
    """Settings of one Slurm site. Every key is optional; the defaults suit a cluster whose Slurm node
    names equal the gpucommons node names (as ``gpuc site import-slurm`` produces)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partitions: dict[str, str] = Field(default_factory=dict)  # gpucommons pool -> Slurm partition
    default_partition: str | None = None  # for pools not in ``partitions``; None: Slurm's default
    node_names: dict[str, str] = Field(default_factory=dict)  # gpucommons node -> Slurm node
    node_pools: dict[str, str] = Field(default_factory=dict)  # node -> pool, if not "<pool>-<n>"
    gres_types: dict[str, str] = Field(default_factory=dict)  # model -> GRES type; default: lower-cased
    enforce_account: bool = False  # pass --account=<spec.account> (AccountingStorageEnforce set)
    requeue: bool = False  # --requeue: Slurm requeues on node failure; else the job is reported lost
    accounting: bool | None = None  # sacct for jobs squeue forgot; None: ask scontrol show config
    srun_multi_node: bool = True  # multi-node jobs: run the command once per node through srun
    job_name_prefix: str = "gpuc-"
    job_env_passthrough: tuple[str, ...] = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME")
    bin_dir: str | None = None  # where sbatch & co. live; None: PATH
    slurm_conf: str | None = None  # SLURM_CONF for every command; None: inherited
    command_timeout_s: float = Field(default=30.0, gt=0)
    # A Slurm job named like ours that no gpucommons job owns: "hold" (report it and keep the GPUs it
    # holds out of scheduling; it may be someone else's) or "cancel" (scancel it).
    unknown_jobs: Literal["hold", "cancel"] = "hold"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | SlurmConfig | None) -> SlurmConfig:
        if isinstance(settings, SlurmConfig):
            return settings
        try:
            return cls.model_validate(dict(settings or {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"slurm backend settings: {where}: {first['msg']}") from None

    def slurm_node(self, node: str) -> str:
        return self.node_names.get(node, node)

    def gpuc_node(self, slurm_node: str) -> str:
        reverse = {v: k for k, v in self.node_names.items()}
        return reverse.get(slurm_node, slurm_node)

    def partition_for(self, node: str) -> str | None:
        pool = self.node_pools.get(node) or node.rsplit("-", 1)[0]
        return self.partitions.get(pool, self.default_partition)


@dataclass(frozen=True)
class Submission:
    """One sbatch call: its arguments (after ``sbatch --parsable``), the script on stdin, its env."""

    args: tuple[str, ...]
    script: str
    env: dict[str, str]


def job_name(config: SlurmConfig, job_id: int) -> str:
    return f"{config.job_name_prefix}{job_id}"


def job_comment(job_id: int, launch_id: str) -> str:
    """The comment that maps a Slurm job back to gpucommons: ``gpucommons-job=7,launch=<id>``."""
    return f"gpucommons-job={job_id}" + (f",launch={launch_id}" if launch_id else "")


def _requeue(config: SlurmConfig, env: Mapping[str, str]) -> bool:
    value = env.get(REQUEUE_ENV)
    if value is None:
        return config.requeue
    if value not in ("0", "1"):
        raise InvalidRequestError(f"{REQUEUE_ENV} must be 0 or 1, got {value!r}")
    return value == "1"


def _gpus_per_node(spec: LaunchSpec) -> int:
    counts = {len(gpus) for _, gpus in spec.placement.node_gpus}
    if len(counts) != 1:
        raise InvalidRequestError(
            f"job {spec.job_id}: Slurm needs the same GPU count on every node, placement has {sorted(counts)}"
        )
    return counts.pop()


def _partition(config: SlurmConfig, spec: LaunchSpec) -> str | None:
    partitions = {config.partition_for(n) for n in spec.node_names}
    if len(partitions) != 1:
        raise InvalidRequestError(f"job {spec.job_id}: nodes span partitions {sorted(map(str, partitions))}")
    return partitions.pop()


def job_environment(
    config: SlurmConfig, spec_env: Mapping[str, str], slurm_conf: str | None
) -> dict[str, str]:
    """What the job sees: a few variables of the service's own environment (never its secrets),
    ``SLURM_CONF`` so sbatch reaches the right controller, then the job's own variables."""
    env = {k: os.environ[k] for k in config.job_env_passthrough if k in os.environ}
    conf = slurm_conf or os.environ.get("SLURM_CONF")
    if conf:
        env["SLURM_CONF"] = conf
    env.update({k: v for k, v in spec_env.items() if k != REQUEUE_ENV})
    return env


def run_environment(config: SlurmConfig, spec: LaunchSpec) -> dict[str, str]:
    """``job_environment`` and the checkpoint file in the run's ``--chdir``, named for the job."""
    env = job_environment(config, spec.env, config.slurm_conf)
    env[CHECKPOINT_FILE_ENV] = str(checkpoint_file(spec.workdir, spec.job_id))
    return env


def build_submission(config: SlurmConfig, spec: LaunchSpec) -> Submission:
    """The sbatch call that runs ``spec`` on exactly its nodes."""
    if not spec.command:
        raise InvalidRequestError(f"job {spec.job_id}: empty command")
    if len(spec.node_names) != len(spec.placement.node_gpus) or not spec.node_names:
        raise InvalidRequestError(f"job {spec.job_id}: node_names does not match the placement")
    nodes = [config.slurm_node(n) for n in spec.node_names]
    gpus = _gpus_per_node(spec)
    gres_type = config.gres_types.get(spec.gpu_model, spec.gpu_model.lower())
    args = [
        f"--job-name={job_name(config, spec.job_id)}",
        f"--comment={job_comment(spec.job_id, spec.env.get(LAUNCH_ID_ENV, ''))}",
        f"--nodes={len(nodes)}",
        f"--nodelist={','.join(nodes)}",
        f"--chdir={spec.workdir}",
        f"--output={spec.stdout_path}",
        f"--error={spec.stderr_path}",
        "--open-mode=append",  # a rerun's output follows the earlier runs', after its header line
        "--export=ALL",
        "--requeue" if _requeue(config, spec.env) else "--no-requeue",
    ]
    if gpus > 0:
        args.append(f"--gres=gpu:{gres_type}:{gpus}")
    if (partition := _partition(config, spec)) is not None:
        args.append(f"--partition={partition}")
    if config.enforce_account:
        args.append(f"--account={spec.account}")
    if math.isfinite(spec.time_limit_s) and spec.time_limit_s > 0:
        args.append(f"--time={math.ceil(spec.time_limit_s / 60)}")
    command = shlex.join(spec.command)
    if len(nodes) > 1 and config.srun_multi_node:
        args.append("--ntasks-per-node=1")
        command = f"srun {command}"
    script = f"#!/bin/sh\n# gpucommons job {spec.job_id}\n{header_shell(spec)}exec {command}\n"
    return Submission(tuple(args), script, run_environment(config, spec))
