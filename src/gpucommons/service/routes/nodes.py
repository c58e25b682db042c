"""Nodes: every signed-in user sees each node and whether it is drained; admins drain and resume them
(design note 0008). A drained node gets no new job; what runs there runs on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from gpucommons.service.auth import AdminDep, PrincipalDep
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.routes.common import ClusterDep
from gpucommons.service.schemas.common import LINE_PATTERN, MAX_LINE
from gpucommons.service.schemas.nodes import NodeDrain, NodeRead
from gpucommons.store import nodes

router = APIRouter(prefix="/nodes", tags=["nodes"])

NodeName = Annotated[str, Path(min_length=1, max_length=MAX_LINE, pattern=LINE_PATTERN)]


def _one(session: SessionDep, cluster: ClusterDep, name: str) -> NodeRead:
    (state,) = nodes.node_states(session, cluster, name)
    return NodeRead.model_validate(state)


@router.get("", responses=error_responses(401))
def list_nodes(_principal: PrincipalDep, session: SessionDep, cluster: ClusterDep) -> list[NodeRead]:
    """Every node of the cluster, in the cluster file's order, with its GPUs held and its drain."""
    return [NodeRead.model_validate(s) for s in nodes.node_states(session, cluster)]


@router.post("/{name}/drain", responses=error_responses(401, 403, 404, 422))
def drain_node(
    name: NodeName, body: NodeDrain, admin: AdminDep, session: SessionDep, cluster: ClusterDep, now: NowDep
) -> NodeRead:
    """Take a node out of service: no new job is placed there from the next cycle; running jobs run
    on. Draining a drained node again keeps its first drain."""
    nodes.drain_node(session, cluster, name, body.reason, admin.user_id, now)
    session.commit()
    return _one(session, cluster, name)


@router.post("/{name}/resume", responses=error_responses(401, 403, 404, 422))
def resume_node(name: NodeName, _admin: AdminDep, session: SessionDep, cluster: ClusterDep) -> NodeRead:
    """Put a node back in service; resuming a node that is not drained changes nothing."""
    nodes.resume_node(session, cluster, name)
    session.commit()
    return _one(session, cluster, name)
