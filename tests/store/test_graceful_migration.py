"""Migration ``0018_graceful_preemption`` on SQLite and PostgreSQL: the new columns of ``jobs``, a
checkpoint that stamps the job (the scheduler's snapshot reads it) while a reason still stamps nothing,
and a downgrade that gives back 0017's triggers and schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from gpucommons.store.base import downgrade, make_engine, upgrade

REVISION = "0018_graceful_preemption"
BEFORE = "0017_job_events"
AT = datetime(2026, 1, 1, tzinfo=UTC)
NEW = {"grace_s", "checkpoint_interval_s", "last_checkpoint_at", "signalled_at", "run_token_sha256"}


def _seed(conn: sa.Connection) -> None:
    tables = sa.MetaData()
    tables.reflect(conn, only=["institutions", "projects", "users", "jobs"])
    conn.execute(
        tables.tables["institutions"].insert(),
        {
            "id": 1,
            "name": "i",
            "kind": "startup",
            "region": "capital",
            "youth_startup": False,
            "created_at": AT,
        },
    )
    conn.execute(
        tables.tables["projects"].insert(),
        {"id": 1, "name": "p", "institution_id": 1, "sovereign": False, "created_at": AT},
    )
    conn.execute(tables.tables["users"].insert(), {"id": 1, "name": "u", "role": "user", "created_at": AT})
    job: dict[str, Any] = {
        "id": 1, "project_id": 1, "user_id": 1, "name": "j", "command": ["true"], "workdir": "",
        "gpus": 1, "accepted_models": [], "time_limit_s": 60.0, "priority_class": "normal",
        "preemptible": True, "sovereign": False, "state": "running", "reason_code": "", "reason": "",
        "submitted_at": AT, "backend": "", "backend_ref": "", "restarts": 0, "borrowing": False,
        "attained_gpu_s": 0.0,
    }  # fmt: skip
    conn.execute(tables.tables["jobs"].insert(), job)


def _stamp_after(engine: sa.Engine, update: str) -> int:
    """The job's change stamp after ``update`` (``SET ...``), in a transaction of its own."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE jobs SET {update} WHERE id = 1"))
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT change_stamp FROM jobs WHERE id = 1")).scalar_one())


def test_0018_adds_the_columns_and_a_checkpoint_stamps_the_job(db_url: str) -> None:
    upgrade(db_url, BEFORE)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            _seed(conn)
        upgrade(db_url, REVISION)
        assert {c["name"] for c in sa.inspect(engine).get_columns("jobs")} >= NEW
        with engine.connect() as conn:
            stored = conn.execute(sa.text(f"SELECT {', '.join(sorted(NEW))} FROM jobs")).one()
        assert tuple(stored) == (None,) * len(NEW)  # existing jobs: class defaults, nothing reported
        stamp = _stamp_after(engine, "reason = 'advisory'")
        assert _stamp_after(engine, "reason = 'still advisory'") == stamp  # reasons stamp nothing
        checkpointed = _stamp_after(engine, "last_checkpoint_at = CURRENT_TIMESTAMP")
        assert checkpointed > stamp
        assert _stamp_after(engine, "signalled_at = CURRENT_TIMESTAMP, grace_s = 5") == checkpointed

        downgrade(db_url, BEFORE)
        assert not NEW & {c["name"] for c in sa.inspect(engine).get_columns("jobs")}
        assert _stamp_after(engine, "state = 'pending'") > checkpointed  # 0014's trigger, as it was
        upgrade(db_url, REVISION)
        assert _stamp_after(engine, "last_checkpoint_at = CURRENT_TIMESTAMP") > checkpointed
    finally:
        engine.dispose()
