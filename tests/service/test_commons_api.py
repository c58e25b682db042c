"""The commons' stages seen through the API, ``gpuc why`` and ``/metrics``, with the live engine stepped
by hand over a scripted backend (nothing is launched), on SQLite and PostgreSQL.

The cluster has two sites, neither sovereign: ``daejeon`` with one GB200 NVL72 node (72 GPUs) and a
0.1 MW cap, which one busy node exceeds (72 x 1200 W x 0.8 + 0.5 x 72 x 1200 W, times PUE 1.3, is
146.0 kW), and uncapped ``seoul`` with one 8 x H100 node. The project's award pays for 10 GB200 GPU-hours.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from gpucommons.cli import jobs as job_cli
from gpucommons.cli.app import app as gpuc
from gpucommons.client import GpucClient
from gpucommons.clusterfile import load_cluster
from gpucommons.config import Settings
from gpucommons.engine.live import EngineOptions, LiveEngine, live_commons
from gpucommons.engine.ports import BackendEvent
from gpucommons.policy.registry import build_policy
from gpucommons.service.app import create_app
from gpucommons.service.backendmetrics import install_backend_metrics
from gpucommons.store import awards as award_repo
from gpucommons.store.calls import create_program
from gpucommons.store.scheduler_state import DatabaseSchedulerState
from gpucommons.store.tenancy import (
    create_institution,
    create_project,
    create_token,
    create_user,
    set_membership,
)
from tests.engine.test_backend_events import ScriptedBackend
from tests.service.test_metrics import scrape

CLUSTER_TOML = """
name = "capped"

[[sites]]
name = "daejeon"
region = "non-capital"
sovereign = false
power_cap_mw = 0.1
pue = 1.3

[[sites]]
name = "seoul"
region = "capital"
sovereign = false
pue = 1.3

[[pools]]
name = "nvl72"
site = "daejeon"
model = "GB200"
nodes = 1
gpus_per_node = 72

[[pools]]
name = "h100"
site = "seoul"
model = "H100"
nodes = 1
gpus_per_node = 8
"""
PUE = 1.3
GB200_BUSY_W = 1200 * 0.8  # a busy device: TDP x utilization (domain/power.py)
NVL72_BASE_W = 0.5 * 1200 * 72  # a busy node beside its devices: half its devices' TDP


@dataclass
class Commons:
    client: TestClient
    engine: LiveEngine
    backend: ScriptedBackend
    token: str
    award_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def submit(self, **fields: object) -> dict[str, object]:
        body = {"project": "vision", "command": ["python3", "train.py"], **fields}
        response = self.client.post("/jobs", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        job: dict[str, object] = response.json()
        return job

    def get(self, path: str) -> dict[str, object]:
        response = self.client.get(path, headers=self.headers)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body


@pytest.fixture
def commons(migrated_url: str, tmp_path: Path) -> Iterator[Commons]:
    cluster_file = tmp_path / "capped.toml"
    cluster_file.write_text(CLUSTER_TOML)
    settings = Settings(home=tmp_path, database_url=migrated_url, cluster=str(cluster_file))
    app = create_app(settings, migrate=False)
    now = datetime.now(UTC)
    with app.state.sessions() as s:
        inst = create_institution(s, "Daejeon Robotics", "university", "non_capital")
        project = create_project(s, "vision", inst.id)
        user = create_user(s, "alice")
        set_membership(s, project.id, user.id, "member")
        token = create_token(s, user.id, now)[1]
        program = create_program(
            s, name="call", model="GB200", capacity_gpus=72, unit_gpus=8, duration_days=30
        )
        terms = award_repo.AwardTerms(project.id, program.id, gpu_hours_budget=10.0, guaranteed_gpus=72)
        award = award_repo.create_award(s, terms, now)
        award_repo.activate_award(s, award.id, now)
        s.commit()
        award_id = award.id
    backend = ScriptedBackend()
    cluster = app.state.cluster = load_cluster(str(cluster_file))  # the routes and the engine share it
    client = TestClient(app)
    engine = LiveEngine(
        DatabaseSchedulerState(app.state.sessions, cluster),
        backend,
        cluster,
        build_policy("quota", commons=live_commons(backend)),
        EngineOptions(logs_dir=tmp_path / "jobs"),
    )
    install_backend_metrics(app.state.metrics_registry, engine)
    yield Commons(client, engine, backend, token, award_id)
    client.close()
    app.state.engine.dispose()


def gpuc_cli(commons: Commons, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """What a ``gpuc`` job command prints, its client talking to the in-process app."""
    client = GpucClient("http://testserver", commons.token, http=commons.client)
    monkeypatch.setattr(job_cli, "_client", lambda: client)
    result = CliRunner().invoke(gpuc, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_sovereign_job_is_accepted_and_waits_for_residency(
    commons: Commons, monkeypatch: pytest.MonkeyPatch
) -> None:
    printed = gpuc_cli(
        commons, monkeypatch, "submit", "--sovereign", "--gpus", "8", "--time", "10m", "--", "true"
    )
    job_id = int(printed.split()[2])
    job = commons.get(f"/jobs/{job_id}")
    assert (job["state"], job["sovereign"]) == ("pending", True)
    plain = commons.submit(gpus=8, time_limit="10m")
    assert plain["sovereign"] is False
    commons.engine.step()
    shown = commons.get(f"/jobs/{job['id']}")
    assert (shown["state"], shown["reason_code"]) == ("pending", "residency")
    assert shown["reason"] == "the job must stay on sovereign sites and the cluster has none"
    assert shown["sovereign"] is True
    why = commons.get(f"/jobs/{job['id']}/why")
    assert why["code"] == "residency" and why["estimated_start_at"] is None
    assert "sovereign site" in str(why["unblock"])
    assert commons.get(f"/jobs/{plain['id']}")["state"] == "running"  # the same job, not sovereign


def test_budget_refusal_shows_the_stage_and_its_figures(
    commons: Commons, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = commons.submit(gpus=8, time_limit="2h")  # 16 GPU-hours against an award of 10
    commons.engine.step()
    award = f"award {commons.award_id}"
    detail = f"{award} has 10.00 of 10.00 GPU-hours left after running jobs; the job needs 16.00"
    shown = commons.get(f"/jobs/{job['id']}")
    assert (shown["state"], shown["reason_code"], shown["reason"]) == ("pending", "budget", detail)
    why = commons.get(f"/jobs/{job['id']}/why")
    assert (why["code"], why["detail"], why["estimated_start_at"]) == ("budget", detail, None)
    printed = gpuc_cli(commons, monkeypatch, "why", str(job["id"]))
    assert f"job {job['id']} is pending: budget - {detail}\n" in printed
    assert "would unblock it: more GPU-hours" in printed
    assert commons.backend.launched == []


def test_power_refusal_shows_the_stage_and_its_figures(
    commons: Commons, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = commons.submit(gpus=72, time_limit="6m")  # 7.2 GPU-hours: the budget covers it
    commons.engine.step()
    draw_kw = PUE * (72 * GB200_BUSY_W + NVL72_BASE_W) / 1e3
    detail = f"site daejeon would draw {draw_kw:.1f} kW, cap 100.0 kW"
    assert detail == "site daejeon would draw 146.0 kW, cap 100.0 kW"
    shown = commons.get(f"/jobs/{job['id']}")
    assert (shown["state"], shown["reason_code"], shown["reason"]) == ("pending", "power", detail)
    why = commons.get(f"/jobs/{job['id']}/why")
    assert (why["code"], why["detail"], why["estimated_start_at"]) == ("power", detail, None)
    printed = gpuc_cli(commons, monkeypatch, "why", str(job["id"]))
    assert f"job {job['id']} is pending: power - {detail}\n" in printed
    assert "would unblock it: the site's draw falling under its cap" in printed
    assert commons.backend.launched == []


def test_metrics_export_each_sites_projected_power_and_cap(commons: Commons) -> None:
    assert not any(name == "gpuc_site_power_mw" for name, _ in scrape(commons.client.get("/metrics").text))
    job = commons.submit(gpus=2, time_limit="10m")
    commons.engine.step()
    assert commons.get(f"/jobs/{job['id']}")["state"] == "running"
    samples = scrape(commons.client.get("/metrics").text)
    want_mw = PUE * (2 * GB200_BUSY_W + NVL72_BASE_W) / 1e6  # 0.0755 MW: two devices and the busy node
    assert samples[("gpuc_site_power_mw", (("site", "daejeon"),))] == pytest.approx(want_mw)
    assert samples[("gpuc_site_power_mw", (("site", "seoul"),))] == 0.0
    assert samples[("gpuc_site_power_cap_mw", (("site", "daejeon"),))] == pytest.approx(0.1)
    assert ("gpuc_site_power_cap_mw", (("site", "seoul"),)) not in samples  # uncapped
    [launched] = commons.backend.launched
    ended = BackendEvent(launched.job_id, "finished", commons.engine.clock(), "ref-1", exit_code=0)
    commons.backend.events.append(ended)
    commons.engine.step()
    assert commons.get(f"/jobs/{job['id']}")["state"] == "finished"
    samples = scrape(commons.client.get("/metrics").text)
    assert samples[("gpuc_site_power_mw", (("site", "daejeon"),))] == 0.0
