"""``GET /jobs/{id}/events`` and ``last_gpus`` through the real app, with the live engine over a scripted
backend: a member reads their job's history in order and, once it ended, where it ran; another
tenant gets the same 404 as for the job itself; the typed client reads the same."""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast, get_args

from fastapi.testclient import TestClient

from gpucommons.client import GpucClient
from gpucommons.clusterfile import load_cluster
from gpucommons.engine.live import EngineOptions, LiveEngine, live_commons
from gpucommons.engine.ports import BackendEvent
from gpucommons.policy.registry import build_policy
from gpucommons.service.schemas.jobs import JobEventRead
from gpucommons.store.job_events import EVENT_KINDS
from gpucommons.store.scheduler_state import DatabaseSchedulerState
from tests.engine.test_backend_events import ScriptedBackend
from tests.service.test_jobs_api import Api, api, submit

__all__ = ["api"]


def scheduler(api: Api, backend: ScriptedBackend, logs: Path) -> LiveEngine:
    cluster = load_cluster("demo")  # the app's default cluster
    state = DatabaseSchedulerState(api.client.app.state.sessions, cluster)  # type: ignore[attr-defined]
    policy = build_policy("quota", commons=live_commons(backend))
    return LiveEngine(state, backend, cluster, policy, EngineOptions(logs_dir=logs))


def test_a_members_job_history_in_order_and_the_gpus_it_ran_on(api: Api, tmp_path: Path) -> None:
    status, job = submit(api, api.alice, gpus=2, models=["H100"])
    assert status == 201
    job_id = cast(int, job["id"])
    _, waiting = submit(api, api.alice, gpus=1, models=["A100"])  # the award pays for no A100
    backend = ScriptedBackend()
    engine = scheduler(api, backend, tmp_path / "jobs")
    engine.step()
    running = api.client.get(f"/jobs/{job_id}", headers=api.alice).json()
    assert running["state"] == "running" and len(running["assigned_gpus"]) == 2
    assert running["last_gpus"] == running["assigned_gpus"]
    ref = backend.launched[0].env["GPUC_LAUNCH_ID"]
    backend.events = [BackendEvent(job_id, "finished", time.time(), backend.accepted[ref], 0)]
    engine.step()

    events = api.client.get(f"/jobs/{job_id}/events", headers=api.alice)
    assert events.status_code == 200, events.text
    history = events.json()
    assert [(e["kind"], e["run"]) for e in history] == [("submitted", 1), ("started", 1), ("ended", 1)]
    assert history[1]["gpus"] == running["assigned_gpus"] and history[2]["detail"] == "finished: exit code 0"
    assert [e["at"] for e in history] == sorted(e["at"] for e in history)
    ended = api.client.get(f"/jobs/{job_id}", headers=api.alice).json()
    assert (ended["state"], ended["assigned_gpus"], ended["last_gpus"]) == (
        "finished",
        [],
        history[1]["gpus"],
    )
    listed = api.client.get("/jobs", params={"state": "finished"}, headers=api.alice).json()
    assert [j["last_gpus"] for j in listed] == [history[1]["gpus"]]

    waits = api.client.get(f"/jobs/{waiting['id']}", headers=api.alice).json()
    assert waits["state"] == "pending" and waits["last_gpus"] == []
    only = api.client.get(f"/jobs/{waiting['id']}/events", headers=api.alice).json()
    assert [e["kind"] for e in only] == ["submitted"]

    token = api.alice["Authorization"].removeprefix("Bearer ")
    client = GpucClient("http://testserver", token, http=TestClient(api.client.app))
    assert [(e.kind, e.gpus) for e in client.job_events(job_id)] == [(e["kind"], e["gpus"]) for e in history]


def test_another_tenant_and_a_missing_job_get_404(api: Api) -> None:
    _, job = submit(api, api.alice)
    job_id = cast(int, job["id"])
    theirs = api.client.get(f"/jobs/{job_id}/events", headers=api.bob)
    shown = api.client.get(f"/jobs/{job_id}", headers=api.bob)
    assert theirs.status_code == shown.status_code == 404
    assert theirs.json() == shown.json()  # word for word: the refusal does not say the job exists
    missing = api.client.get("/jobs/999999/events", headers=api.alice)
    assert (
        missing.status_code == 404
        and missing.json() == api.client.get("/jobs/999999", headers=api.alice).json()
    )
    assert api.client.get(f"/jobs/{job_id}/events").status_code == 401


def test_the_api_names_the_kinds_the_store_records() -> None:
    assert get_args(JobEventRead.model_fields["kind"].annotation) == EVENT_KINDS
