"""A migrated database (SQLite, and PostgreSQL when ``GPUC_TEST_POSTGRES_URL`` is set) with one startup
project holding an active award, and engine builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gpucommons.backends.local import LocalBackend
from gpucommons.clusterfile import load_cluster
from gpucommons.domain.cluster import Cluster
from gpucommons.engine.live import EngineOptions, LiveEngine, live_commons
from gpucommons.policy.registry import build_policy
from gpucommons.store import awards as award_repo
from gpucommons.store.base import make_engine, session_factory
from gpucommons.store.calls import create_program
from gpucommons.store.jobs import JobRequest, submit_job
from gpucommons.store.scheduler_state import DatabaseSchedulerState
from gpucommons.store.tenancy import create_institution, create_project, create_user, set_membership
from tests.db_fixtures import db_url, migrated_url

__all__ = ["World", "db_url", "migrated_url", "world"]


@dataclass
class World:
    sessions: sessionmaker[Session]
    root: Path
    project_id: int
    user_id: int
    award_id: int

    def options(self, ttl_s: float = 15.0, holder: str = "", **fields: Any) -> EngineOptions:
        options = replace(EngineOptions(logs_dir=self.root / "jobs", lease_ttl_s=ttl_s), **fields)
        return replace(options, holder=holder) if holder else options

    def engine(
        self,
        clock: Callable[[], float] | None = None,
        ttl_s: float = 15.0,
        holder: str = "",
        cluster: Cluster | None = None,
        **fields: Any,
    ) -> LiveEngine:
        """A scheduler with its own backend instance over the shared backend state (a fresh process),
        on ``cluster`` (default: the ``demo`` preset)."""
        options = self.options(ttl_s, holder, **fields)
        backend = LocalBackend(self.root / "backend", grace_s=1.0)
        kwargs = {"clock": clock} if clock is not None else {}
        cluster = cluster or load_cluster("demo")
        return LiveEngine(
            DatabaseSchedulerState(self.sessions, cluster),
            backend,
            cluster,
            build_policy("quota", commons=live_commons(backend)),
            options,
            **kwargs,
        )

    def submit(
        self,
        argv: list[str],
        gpus: int = 1,
        time_limit: str = "1h",
        project_id: int | None = None,
        cluster: Cluster | None = None,
        **request: Any,
    ) -> int:
        """Submit ``argv`` as the world's user; ``request``: more ``JobRequest`` fields."""
        with self.sessions() as session:
            row, _ = submit_job(
                session,
                cluster or load_cluster("demo"),
                project_id or self.project_id,
                self.user_id,
                JobRequest(gpus=gpus, command=argv, time_limit=time_limit, **request),
                datetime.now(UTC),
            )
            session.commit()
            return row.id


@pytest.fixture
def world(tmp_path: Path, migrated_url: str) -> Iterator[World]:
    engine = make_engine(migrated_url)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    with sessions() as s:
        inst = create_institution(s, "Acme AI", "startup", "non_capital")
        project = create_project(s, "acme", inst.id)
        user = create_user(s, "alice")
        set_membership(s, project.id, user.id, "member")
        program = create_program(
            s,
            name="call",
            model="H100",
            capacity_gpus=16,
            unit_gpus=8,
            duration_days=30,
            price_krw_per_gpu_hour=3600,
        )
        terms = award_repo.AwardTerms(project.id, program.id, gpu_hours_budget=100.0, guaranteed_gpus=8)
        award = award_repo.create_award(s, terms, now - timedelta(minutes=1))
        award_repo.activate_award(s, award.id, now)
        s.commit()
        ids = (project.id, user.id, award.id)
    yield World(sessions, tmp_path, *ids)
    engine.dispose()
