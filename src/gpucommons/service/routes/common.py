"""What several routers share: the cluster the server schedules on (jobs are checked against it at
submit, programs at creation) and whether its backend needs even gangs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gpucommons.backends.local import LocalBackend
from gpucommons.backends.slurm import SlurmBackend
from gpucommons.clusterfile import load_cluster
from gpucommons.config import Settings
from gpucommons.domain.cluster import Cluster

# Whether each backend runs a job as one request with the same GPUs on every node (``Backend.even_gangs``),
# read from the classes so a submission is checked by the rule the scheduler will apply.
EVEN_GANGS_BY_BACKEND: dict[str, bool] = {
    "local": LocalBackend.even_gangs,
    "slurm": SlurmBackend.even_gangs,
}


def get_cluster(request: Request) -> Cluster:
    """The inventory the server schedules on, loaded once from ``settings.cluster``."""
    cluster: Cluster | None = getattr(request.app.state, "cluster", None)
    if cluster is None:
        settings: Settings = request.app.state.settings
        cluster = load_cluster(settings.cluster)
        request.app.state.cluster = cluster
    return cluster


def get_even_gangs(request: Request) -> bool:
    """Whether the configured backend needs even gangs (Slurm does): a job it could never run is then
    refused at submit instead of waiting for ever."""
    settings: Settings = request.app.state.settings
    return EVEN_GANGS_BY_BACKEND.get(settings.backend, False)


ClusterDep = Annotated[Cluster, Depends(get_cluster)]
EvenGangsDep = Annotated[bool, Depends(get_even_gangs)]
