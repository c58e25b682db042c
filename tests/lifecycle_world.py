"""A call for proposals to run the award lifecycle on, shared by the store, service and CLI tests:
program ``call`` (32 H100 GPUs in whole 8-GPU servers, 120-day awards, the default reclaim table every
30 days with 7 days' warning) and four projects that applied, ranked alpha (16 GPUs, score 90), beta
(16, 80), gamma (8, 70), delta (8, 60). Each PI has an e-mail address, alpha also a member; delta's PI
has none. ``meter`` charges an award real metered usage on the demo cluster's H100 nodes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.cluster import Cluster
from gpucommons.store.calls import create_program, score_proposal, submit_proposal
from gpucommons.store.jobs import AllocationRow, JobRequest, submit_job
from gpucommons.store.tenancy import create_institution, create_project, create_user, set_membership
from gpucommons.store.usage import UsageRow, end_segment

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CLUSTER: Cluster = load_cluster("demo")
H100_NODES = (0, 1)  # the demo cluster's two 8-GPU H100 nodes
APPLICANTS = (("alpha", 16, 90), ("beta", 16, 80), ("gamma", 8, 70), ("delta", 8, 60))
EMAILS = {
    "alpha": ("pi@alpha.example", "member@alpha.example"),
    "beta": ("pi@beta.example",),
    "gamma": ("pi@gamma.example",),
    "delta": (),
}


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


@dataclass(frozen=True)
class Call:
    program_id: int
    projects: dict[str, int]
    proposals: dict[str, int]
    admin_id: int


def seed_call(session: Session) -> Call:
    """The program, its four applicants (reviewed) and their people; flushed, not committed."""
    admin = create_user(session, "admin", "admin", "ops@commons.example")
    program = create_program(
        session, name="call", model="H100", capacity_gpus=32, unit_gpus=8, duration_days=120
    )
    projects, proposals = {}, {}
    for name, gpus, score in APPLICANTS:
        inst = create_institution(session, f"{name} institute", "university", "capital")
        project = create_project(session, name, inst.id)
        people = EMAILS[name] or (None,)
        for i, email in enumerate(people):
            user = create_user(session, f"{name}-{i}", "user", email)
            set_membership(session, project.id, user.id, "pi" if i == 0 else "member")
        proposal = submit_proposal(session, program.id, project.id, admin.id, gpus, "", T0)
        score_proposal(session, proposal.id, admin.id, score, "", T0)
        projects[name], proposals[name] = project.id, proposal.id
    session.flush()
    return Call(program.id, projects, proposals, admin.id)


def meter(
    session: Session,
    call: Call,
    project: str,
    award_id: int,
    gpus: int,
    started_at: datetime,
    held: timedelta,
) -> UsageRow:
    """Run a ``gpus``-GPU job of ``project`` under ``award_id`` on the H100 nodes from ``started_at``
    for ``held``, and end its segment: metered and charged as the live engine charges it."""
    request = JobRequest(gpus=gpus, command=["train"], models=("H100",))
    job, _ = submit_job(session, CLUSTER, call.projects[project], call.admin_id, request, started_at)
    job.state, job.started_at, job.award_id, job.backend_ref = "running", started_at, award_id, "ref"
    for g in range(gpus):
        node = H100_NODES[g // 8]
        session.add(
            AllocationRow(job_id=job.id, node_index=node, node_name=f"h100-{node + 1}", gpu_index=g % 8)
        )
    session.flush()
    usage = end_segment(session, CLUSTER, job, started_at + held)
    assert usage is not None
    session.flush()
    return usage
