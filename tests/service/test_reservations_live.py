"""A reservation through the whole service on the local backend, on SQLite and PostgreSQL: the app,
the live engine on its thread as ``gpuc up`` runs it, real processes, and ``gpuc reserve`` / ``gpuc
why`` against it.

One node of 8 H100. A preemptible job of project ``borrowers`` holds all 8 GPUs when a reservation of
8 for project ``consortium`` is made to start seconds later. The consortium's job waits for the start
("reservation N starts at ...; 0 of 8 GPUs drained"). At the start the borrower's job is told to stop
(SIGTERM), writes a checkpoint in its working directory within its grace period and is requeued; the
consortium's job is started within one cycle of the start; the borrower's job waits out the
reservation and then runs again, in the same directory, with ``GPUC_RESTART_COUNT=1``, and resumes
from its checkpoint.

"Within one cycle": the consortium's job's recorded start lies between the reservation's start and one
scheduler interval plus one step later (``STEP_SLACK_S``: a step's own time on the shared test
machine, its database writes and a launch included)."""

from __future__ import annotations

import json
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from gpucommons.cli import app as cli_app
from gpucommons.cli import jobs as cli_jobs
from gpucommons.cli import reservations as cli_reservations
from gpucommons.client import GpucClient
from gpucommons.config import Settings
from gpucommons.service.app import create_app
from gpucommons.service.scheduler import start_in_background
from gpucommons.service.schemas.reservations import ReservationRead
from gpucommons.store import awards as award_repo
from gpucommons.store.calls import create_program
from gpucommons.store.tenancy import (
    create_institution,
    create_project,
    create_token,
    create_user,
    set_membership,
)
from tests.components import wait_until
from tests.job_release import Release, releases

__all__ = ["releases"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

INTERVAL_S = 0.2  # the scheduler's cycle interval
STEP_SLACK_S = 1.5
LEAD_S = 6.0  # from creating the reservation to its start
WINDOW_S = 12  # the reservation's length
GRACE_S = 20  # the borrower's grace period: far more than its checkpoint takes
CLUSTER_TOML = """
name = "one-node"

[[sites]]
name = "local"
region = "non-capital"

[[pools]]
name = "h100"
site = "local"
model = "H100"
nodes = 1
gpus_per_node = 8
"""


def borrower_script(release: Release) -> str:
    """A checkpointing job: its first run works until SIGTERM, then writes ``ckpt`` in its working
    directory, reports it (``GPUC_CHECKPOINT_FILE``) and exits; a run that finds ``ckpt`` resumes."""
    return "\n".join(
        [
            "if [ -f ckpt ]; then",
            '  echo "resumed from $(cat ckpt) on restart $GPUC_RESTART_COUNT in $PWD"; exit 0',
            "fi",
            'echo "first run in $PWD"',
            'trap \'echo step-42 > ckpt; touch "$GPUC_CHECKPOINT_FILE"; echo checkpoint written; '
            "kill $worker 2>/dev/null; exit 0' TERM",
            f"{release.shell} & worker=$!",
            "wait $worker",
            "echo released without being stopped; exit 3",
        ]
    )


@dataclass
class Service:
    app: Any
    clients: dict[str, TestClient]
    home: Path

    def job(self, job_id: int) -> dict[str, Any]:
        response = self.clients["admin"].get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def stdout(self, job_id: int) -> str:
        text: str = (
            self.clients["admin"].get(f"/jobs/{job_id}/logs", params={"stream": "stdout"}).json()["text"]
        )
        return text

    def cli(self, who: str, *args: str) -> str:
        """``gpuc ARGS`` as ``who``, against this service."""

        def make() -> GpucClient:
            return GpucClient("http://testserver", http=self.clients[who])

        patches = [(cli_jobs, "_client"), (cli_reservations, "make_client")]
        saved = [(module, name, getattr(module, name)) for module, name in patches]
        try:
            for module, name in patches:
                setattr(module, name, make)
            result = CliRunner().invoke(cli_app.app, list(args), env={"COLUMNS": "200"})
        finally:
            for module, name, value in saved:
                setattr(module, name, value)
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.output


@pytest.fixture
def service(migrated_url: str, tmp_path: Path) -> Iterator[Service]:
    cluster = tmp_path / "one-node.toml"
    cluster.write_text(CLUSTER_TOML)
    settings = Settings(
        home=tmp_path / "home",
        database_url=migrated_url,
        cluster=str(cluster),
        scheduler_interval_s=INTERVAL_S,
    )
    app = create_app(settings, migrate=False)
    now = datetime.now(UTC)
    tokens: dict[str, str] = {}
    with app.state.sessions() as s:
        institution = create_institution(s, "KAIST", "university", "non_capital")
        program = create_program(
            s, name="call", model="H100", capacity_gpus=16, unit_gpus=8, duration_days=30
        )
        admin = create_user(s, "ops", "admin")
        tokens["admin"] = create_token(s, admin.id, now)[1]
        for project_name, user_name in (("consortium", "carol"), ("borrowers", "alice")):
            project = create_project(s, project_name, institution.id)
            user = create_user(s, user_name)
            set_membership(s, project.id, user.id, "member")
            tokens[user_name] = create_token(s, user.id, now)[1]
            terms = award_repo.AwardTerms(project.id, program.id, gpu_hours_budget=100.0)
            award_repo.activate_award(s, award_repo.create_award(s, terms, now).id, now)
        s.commit()
    stop = start_in_background(app, settings)
    clients = {who: TestClient(app, headers={"Authorization": f"Bearer {t}"}) for who, t in tokens.items()}
    yield Service(app, clients, settings.home)
    for client in clients.values():
        client.close()
    stop.set()
    app.state.scheduler_wake.set()
    for thread in threading.enumerate():
        if thread.name == "gpuc-scheduler":
            thread.join(30)
    app.state.engine.dispose()
    work_root = settings.home / "backend" / "local" / "work_root"
    if work_root.exists():
        shutil.rmtree(work_root.read_text().strip(), ignore_errors=True)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_reservation_stops_a_borrower_gracefully_and_starts_its_job_on_time(
    service: Service, releases: Callable[[str], Release]
) -> None:
    alice, carol = service.clients["alice"], service.clients["carol"]
    # a preemptible borrower holds the node
    script = borrower_script(releases("never"))
    body = {"project": "borrowers", "gpus": 8, "time_limit": "1h", "grace_period": f"{GRACE_S}s"}
    made = alice.post("/jobs", json={**body, "command": ["/bin/sh", "-c", script]})
    assert made.status_code == 201, made.text
    borrower = made.json()["id"]
    wait_until(lambda: "first run in" in service.stdout(borrower), 30, lambda: str(service.job(borrower)))
    first_dir = service.stdout(borrower).split("first run in ", 1)[1].split()[0]

    # the reservation, seconds ahead, through the command line
    start = (datetime.now(UTC) + timedelta(seconds=LEAD_S)).replace(microsecond=0)
    said = service.cli(
        "admin", "reserve", "create", "--project", "consortium", "--gpus", "8", "--model", "H100",
        "--start", start.isoformat(), "--duration", f"{WINDOW_S}s", "--json",
    )  # fmt: skip
    reservation = ReservationRead.model_validate_json(said)
    assert (reservation.start_at, reservation.state) == (start, "scheduled")
    end = start + timedelta(seconds=WINDOW_S)

    # the consortium's job waits for the start, and says so
    reserved = carol.post(
        "/jobs",
        json={"project": "consortium", "gpus": 8, "time_limit": "1m", "command": ["echo", "reserved run"]},
    ).json()["id"]

    def why() -> dict[str, Any]:
        found: dict[str, Any] = carol.get(f"/jobs/{reserved}/why").json()
        return found

    waiting = wait_until(lambda: (w := why())["code"] == "reservation" and w, LEAD_S, lambda: str(why()))
    when = start.strftime("%Y-%m-%d %H:%M UTC")
    assert waiting["detail"] == f"reservation {reservation.id} starts at {when}; 0 of 8 GPUs drained"
    assert _at(waiting["estimated_start_at"]) == start
    assert waiting["unblock"].startswith("the reservation's start")
    shown = service.cli("carol", "why", str(reserved))
    assert f"reservation {reservation.id} starts at {when}; 0 of 8 GPUs drained" in shown
    assert datetime.now(UTC) < start, "the setup took longer than the lead: raise LEAD_S"

    # the start: the reserved job is started within one cycle, the borrower stopped and requeued
    running = wait_until(
        lambda: (job := service.job(reserved))["started_at"] and job,
        LEAD_S + 10,
        lambda: str(service.job(reserved)),
    )
    started = _at(running["started_at"])
    assert start <= started <= start + timedelta(seconds=INTERVAL_S + STEP_SLACK_S), (start, started)
    wait_until(lambda: service.job(reserved)["state"] == "finished", 30, lambda: str(service.job(reserved)))
    assert "reserved run" in service.stdout(reserved)
    stopped = service.job(borrower)
    assert (stopped["state"], stopped["restarts"]) == ("pending", 1), stopped
    assert "checkpoint written" in service.stdout(borrower)
    checkpoint = stopped.get("last_checkpoint_at")
    assert checkpoint is not None and start <= _at(checkpoint) <= start + timedelta(seconds=GRACE_S), stopped
    held = carol.get(f"/jobs/{borrower}/why")
    assert held.status_code == 404  # another project's job: as if absent
    held_why = alice.get(f"/jobs/{borrower}/why").json()
    assert (
        held_why["code"] == "reservation"
        and f"held for reservation {reservation.id} until" in held_why["detail"]
    )

    # after the reservation: the borrower resumes from its checkpoint, in the same directory
    done = wait_until(
        lambda: (job := service.job(borrower))["state"] == "finished" and job,
        WINDOW_S + 30,
        lambda: f"{service.job(borrower)}\n{service.stdout(borrower)}",
    )
    assert _at(done["started_at"]) >= end, (done["started_at"], end)
    assert (done["exit_code"], done["restarts"]) == (0, 1)
    assert f"resumed from step-42 on restart 1 in {first_dir}" in service.stdout(borrower)
    listed = service.cli("admin", "reserve", "list", "--all", "--json")
    assert [r["state"] for r in json.loads(listed)] == ["ended"]
