"""``/metrics`` after a submission: jobs by state, pending jobs by reason, GPUs per pool, submissions,
and the scheduler's cycle histogram when the loop runs in the server process."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gpucommons.config import Settings
from gpucommons.service.app import create_app
from gpucommons.service.scheduler import start_in_background
from tests.components import wait_until
from tests.service.test_jobs_api import Api, api, submit

__all__ = ["api"]


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_after_a_submit(api: Api) -> None:
    status, _ = submit(api, api.alice, idempotency_key="once")
    assert status == 201
    status, _ = submit(api, api.alice, idempotency_key="once")  # a retry is not a new submission
    assert status == 200
    response = api.client.get("/metrics")
    assert response.status_code == 200
    samples = scrape(response.text)
    assert samples[("gpuc_jobs", (("state", "pending"),))] == 1
    assert samples[("gpuc_jobs", (("state", "running"),))] == 0
    assert samples[("gpuc_pending_jobs", (("reason", "new"),))] == 1
    assert samples[("gpuc_job_submissions_total", ())] == 1
    pools = {labels[0][1] for name, labels in samples if name == "gpuc_pool_gpus_free"}
    assert pools, "every pool of the cluster reports its free GPUs"
    for pool in pools:
        assert samples[("gpuc_pool_gpus_allocated", (("pool", pool),))] == 0
        assert samples[("gpuc_pool_gpus_free", (("pool", pool),))] > 0
    requests = ("gpuc_http_requests_total", (("method", "POST"), ("route", "/jobs"), ("status", "201")))
    assert samples[requests] == 1


def test_scheduler_cycles_are_timed(tmp_path: Path, migrated_url: str) -> None:
    settings = Settings(home=tmp_path, database_url=migrated_url, scheduler_interval_s=0.05)
    app = create_app(settings)
    stop = start_in_background(app, settings)

    def two_cycles_timed() -> bool:
        with TestClient(app) as client:
            samples = scrape(client.get("/metrics").text)
        return samples.get(("gpuc_scheduler_cycle_duration_seconds_count", ()), 0.0) >= 2

    try:
        wait_until(two_cycles_timed, 20, "the scheduler's cycle histogram did not count two cycles")
    finally:
        stop.set()
        for thread in threading.enumerate():
            if thread.name == "gpuc-scheduler":
                thread.join(10)
        app.state.engine.dispose()
