"""The whole service, as ``gpuc server`` runs it, for the dashboard's browser tests: the app served
by uvicorn on a free port of 127.0.0.1 on a thread, with the scheduler loop and the local backend
running real processes in the same process, over a SQLite file seeded beforehand.

The seed: projects ``alpha`` (institution KAIST, its ``member``) and ``beta`` (a startup, its PI
``outsider``), each with an active 8-GPU H100 award of program ``2025-call`` and a proposal to
``2026-call`` (alpha's scored 70 by the admin), metered usage over three months, and for each project
jobs that ask for A100s, which their H100 awards do not pay for, so they wait (``award-model``)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session

from gpucommons.clusterfile import load_cluster
from gpucommons.config import Settings
from gpucommons.domain.cluster import Cluster
from gpucommons.service.app import create_app
from gpucommons.service.scheduler import start_in_background
from gpucommons.store import awards as award_repo
from gpucommons.store.calls import create_program, score_proposal, submit_proposal
from gpucommons.store.jobs import AllocationRow, JobRequest, JobRow, submit_job
from gpucommons.store.tenancy import (
    create_institution,
    create_project,
    create_token,
    create_user,
    set_membership,
)
from gpucommons.store.usage import end_segment
from tests.components import wait_until

HOST = "127.0.0.1"
CLUSTER: Cluster = load_cluster("demo")
H100_NODES = ((0, "h100-1"), (1, "h100-2"))
# (project, days before now the segment ended, GPUs, hours): a segment a month for three months.
HISTORY = (
    ("alpha", 62, 2, 3.0),
    ("alpha", 31, 4, 2.0),
    ("alpha", 1, 2, 5.0),
    ("beta", 62, 8, 6.0),
    ("beta", 1, 8, 4.0),
)


@dataclass
class Served:
    url: str
    app: FastAPI
    seeded_at: datetime
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)

    def api(self, who: str) -> httpx.Client:
        """The REST API as ``who``."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[who]}"})

    def job(self, job_id: int) -> JobRow:
        with self.app.state.sessions() as s:
            row: JobRow | None = s.get(JobRow, job_id)
            assert row is not None
            return row


def _metered(
    session: Session, project_id: int, user_id: int, award_id: int, ended: datetime, gpus: int, hours: float
) -> None:
    """A finished job of ``gpus`` H100s that ran ``hours`` up to ``ended``, metered and charged as the
    live engine meters and charges a segment."""
    started = ended - timedelta(hours=hours)
    job, _ = submit_job(
        session,
        CLUSTER,
        project_id,
        user_id,
        JobRequest(gpus=gpus, command=["train"], models=("H100",)),
        started,
    )
    job.state, job.started_at, job.award_id, job.backend_ref = "running", started, award_id, "history"
    for g in range(gpus):
        node, name = H100_NODES[g // 8]
        session.add(AllocationRow(job_id=job.id, node_index=node, node_name=name, gpu_index=g % 8))
    session.flush()
    end_segment(session, CLUSTER, job, ended)
    job.state, job.ended_at, job.reason_code, job.reason = "finished", ended, "finished", "finished"
    session.flush()


def seed(served: Served) -> None:
    now = served.seeded_at
    with served.app.state.sessions() as s:
        kaist = create_institution(s, "KAIST", "university", "non_capital")
        startup = create_institution(s, "Seoul AI", "startup", "capital")
        projects = {
            "alpha": create_project(s, "alpha", kaist.id).id,
            "beta": create_project(s, "beta", startup.id).id,
        }
        for name, role in (
            ("admin", "admin"),
            ("reviewer", "reviewer"),
            ("member", "user"),
            ("outsider", "user"),
        ):
            user = create_user(s, name, role)
            served.ids[name] = user.id
            served.tokens[name] = create_token(s, user.id, now)[1]
        set_membership(s, projects["alpha"], served.ids["member"], "member")
        set_membership(s, projects["beta"], served.ids["outsider"], "pi")
        running_call, next_call = (
            create_program(
                s,
                name=name,
                model="H100",
                capacity_gpus=16,
                unit_gpus=8,
                duration_days=365,
                price_krw_per_gpu_hour=2000,
            )
            for name in ("2025-call", "2026-call")
        )
        people = {"alpha": served.ids["member"], "beta": served.ids["outsider"]}
        for name, project_id in projects.items():
            terms = award_repo.AwardTerms(
                project_id,
                running_call.id,
                None,
                500.0,
                8,
                now - timedelta(days=90),
                now + timedelta(days=200),
            )
            award = award_repo.create_award(s, terms, now - timedelta(days=90))
            award_repo.activate_award(s, award.id, now - timedelta(days=90))
            proposal = submit_proposal(s, next_call.id, project_id, people[name], 8, f"{name} models", now)
            served.ids.update({name: project_id, f"{name}_proposal": proposal.id, f"{name}_award": award.id})
        for name, days, gpus, hours in HISTORY:
            _metered(
                s,
                projects[name],
                people[name],
                served.ids[f"{name}_award"],
                now - timedelta(days=days),
                gpus,
                hours,
            )
        score_proposal(s, served.ids["alpha_proposal"], served.ids["admin"], 70, "solid", now)
        for key, name in (("alpha_why", "alpha"), ("alpha_cancel", "alpha"), ("beta_secret", "beta")):
            request = JobRequest(
                gpus=1, command=["python3", "-c", "pass"], models=("A100",), name=key.replace("_", "-")
            )
            served.ids[key] = submit_job(s, CLUSTER, projects[name], people[name], request, now)[0].id
        s.commit()


@contextmanager
def serve(home: Path) -> Iterator[Served]:
    """The seeded service with its scheduler, until the block ends."""
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'gpuc.db'}", scheduler_interval_s=0.2)
    app = create_app(settings)
    listener = socket.socket()
    listener.bind((HOST, 0))
    served = Served(f"http://{HOST}:{listener.getsockname()[1]}", app, datetime.now(UTC))
    seed(served)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="dashboard-server")
    thread.start()
    stop_scheduler = start_in_background(app, settings)
    try:
        wait_until(lambda: server.started, 20, "the dashboard's server did not start")
        yield served
    finally:
        stop_scheduler.set()
        server.should_exit = True
        thread.join(20)
        listener.close()
