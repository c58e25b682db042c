"""Nodes: which nodes an operator drained (design note 0008), and each node's state for ``GET /nodes``.

A drain is a row of its own per node, keyed by the node's name in the cluster file: it outlives
restarts and holds for whichever scheduler takes the lease. ``drain_node`` keeps the first drain of a
node drained again (its reason, author and time), so repeating the command changes nothing.
Flushes, never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from gpucommons.domain.cluster import Cluster
from gpucommons.errors import NotFoundError
from gpucommons.store.base import Base, UtcDateTime
from gpucommons.store.jobs import AllocationRow
from gpucommons.store.tenancy import UserRow


class NodeDrainRow(Base):
    """A node out of service: no new job is placed there until it is resumed."""

    __tablename__ = "node_drains"

    node_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    reason: Mapped[str] = mapped_column(String(500))
    drained_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    drained_at: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class NodeState:
    """One node of the cluster as ``gpuc node list`` shows it."""

    name: str
    pool: str
    model: str
    site: str
    gpus: int
    gpus_allocated: int
    drained: bool
    drain_reason: str
    drained_by: str
    drained_at: datetime | None


def _node(cluster: Cluster, name: str) -> None:
    if not any(n.name == name for n in cluster.nodes):
        raise NotFoundError(f"node {name!r} not found")


def drain_node(
    session: Session, cluster: Cluster, name: str, reason: str, user_id: int | None, at: datetime
) -> None:
    """Take ``name`` out of service; a node already drained keeps its first drain."""
    _node(cluster, name)
    if session.get(NodeDrainRow, name) is None:
        session.add(NodeDrainRow(node_name=name, reason=reason, drained_by=user_id, drained_at=at))
        session.flush()


def resume_node(session: Session, cluster: Cluster, name: str) -> None:
    """Put ``name`` back in service (a node not drained stays as it is)."""
    _node(cluster, name)
    session.execute(delete(NodeDrainRow).where(NodeDrainRow.node_name == name))
    session.flush()


def drained_nodes(session: Session) -> frozenset[str]:
    return frozenset(session.scalars(select(NodeDrainRow.node_name)))


def node_states(session: Session, cluster: Cluster, name: str | None = None) -> list[NodeState]:
    """Every node of ``cluster`` (or only ``name``) in the cluster file's order, with the GPUs running
    jobs hold there and its drain, if any."""
    if name is not None:
        _node(cluster, name)
    per_node = select(AllocationRow.node_name, func.count()).group_by(AllocationRow.node_name)
    held = {node_name: int(count) for node_name, count in session.execute(per_node)}
    drains = {
        row.node_name: (row, author)
        for row, author in session.execute(
            select(NodeDrainRow, UserRow.name).outerjoin(UserRow, UserRow.id == NodeDrainRow.drained_by)
        )
    }
    pools = cluster.pool_by_name
    states = []
    for node in cluster.nodes:
        if name is not None and node.name != name:
            continue
        pool = pools[node.pool]
        drain, author = drains.get(node.name, (None, None))
        states.append(
            NodeState(
                name=node.name,
                pool=node.pool,
                model=pool.model.name,
                site=pool.site,
                gpus=node.gpus,
                gpus_allocated=held.get(node.name, 0),
                drained=drain is not None,
                drain_reason=drain.reason if drain is not None else "",
                drained_by=author or "",
                drained_at=drain.drained_at if drain is not None else None,
            )
        )
    return states
