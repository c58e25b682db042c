"""Migration ``0005_job_versions`` on a database that holds jobs and a lease (SQLite and PostgreSQL):
stored rows get their version, launch counters and epoch; a job asked to cancel and left pending by
the old code is cancelled; downgrade removes the columns again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from gpucommons.store.base import downgrade, make_engine, upgrade

BEFORE = "0004_tokens"
AT = datetime(2026, 1, 1, tzinfo=UTC)


def _job(job_id: int, state: str, cancel_requested_at: datetime | None) -> dict[str, Any]:
    return {
        "id": job_id, "project_id": 1, "user_id": 1, "name": "j", "command": ["true"], "workdir": "",
        "gpus": 1, "accepted_models": [], "time_limit_s": 60.0, "priority_class": "normal",
        "preemptible": True, "sovereign": False, "state": state, "reason_code": "", "reason": "",
        "submitted_at": AT, "backend": "", "backend_ref": "", "restarts": 1, "borrowing": False,
        "attained_gpu_s": 0.0, "cancel_requested_at": cancel_requested_at,
    }  # fmt: skip


def test_0005_fills_versions_and_epochs_and_cancels_forgotten_requests(db_url: str) -> None:
    upgrade(db_url, BEFORE)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            tables = sa.MetaData()
            tables.reflect(conn, only=["institutions", "projects", "users", "jobs", "scheduler_lease"])
            conn.execute(
                tables.tables["institutions"].insert(),
                {"id": 1, "name": "i", "kind": "startup", "region": "capital", "youth_startup": False,
                 "created_at": AT},
            )  # fmt: skip
            conn.execute(
                tables.tables["projects"].insert(),
                {"id": 1, "name": "p", "institution_id": 1, "sovereign": False, "created_at": AT},
            )
            conn.execute(
                tables.tables["users"].insert(), {"id": 1, "name": "u", "role": "user", "created_at": AT}
            )
            conn.execute(
                tables.tables["jobs"].insert(),
                [_job(1, "pending", AT), _job(2, "pending", None), _job(3, "running", AT)],
            )
            conn.execute(
                tables.tables["scheduler_lease"].insert(), {"id": 1, "holder": "h", "expires_at": AT}
            )
        upgrade(db_url)
        with engine.connect() as conn:
            jobs = conn.execute(
                sa.text("SELECT id, state, reason, version, launch_attempts, retry_at FROM jobs ORDER BY id")
            ).all()
            assert [tuple(j) for j in jobs] == [
                (1, "cancelled", "cancelled while pending", 1, 0, None),
                (2, "pending", "", 1, 0, None),
                (3, "running", "", 1, 0, None),
            ]
            assert conn.execute(sa.text("SELECT epoch FROM scheduler_lease")).scalar() == 0
        downgrade(db_url, BEFORE)
        columns = {c["name"] for c in sa.inspect(engine).get_columns("jobs")}
        assert not columns & {"version", "launch_attempts", "retry_at"}
        assert "epoch" not in {c["name"] for c in sa.inspect(engine).get_columns("scheduler_lease")}
    finally:
        engine.dispose()
