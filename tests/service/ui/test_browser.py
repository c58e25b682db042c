"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright) against
the real service with its scheduler and local backend (``served.py``): a member, a reviewer and an
admin sign in with their tokens, each sees their pages and only their own data; the member watches a
job run to its end without reloading and reads its history and its log, and cancels a job; the
reviewer scores a proposal; the admin reads a site's draw against its cap, the queue, the awards and
a target. Each step's page is saved under ``test-artifacts/ui/``."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlalchemy import select

from gpucommons.service.ui import jobs as job_pages
from gpucommons.service.ui.power import site_power
from gpucommons.store.calls import ReviewRow
from gpucommons.store.reports import bucket_of
from gpucommons.store.why import why
from tests.components import require_component, wait_until
from tests.conftest import REPO_ROOT
from tests.service.ui.served import CLUSTER, HISTORY, Served, serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"
WAIT_MS = 20_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(job_pages, "JOBS_REFRESH_S", 0.3)  # the job list's refresh, quick for the test
        with serve(tmp_path_factory.mktemp("dashboard") / "home") as running:
            waiting = [running.ids[k] for k in ("alpha_why", "alpha_cancel", "beta_secret")]

            def examined() -> bool:  # a scheduling cycle has said why each waits
                return all(running.job(j).reason_code == "award-model" for j in waiting)

            wait_until(examined, 20, "the scheduler never examined the waiting jobs")
            yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_component(CHROMIUM.exists(), f"Debian's chromium ({CHROMIUM})")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    fresh = browser.new_context(viewport={"width": 1280, "height": 900})
    yield fresh
    fresh.close()


def sign_in(context: BrowserContext, served: Served, who: str) -> Page:
    page = context.new_page()
    page.goto(f"{served.url}/ui/")
    expect(page).to_have_url(f"{served.url}/ui/signin")
    page.fill("#token", served.tokens[who])
    page.click("button[type=submit]")
    expect(page.locator("#who")).to_contain_text(who)
    return page


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_member_sees_only_their_jobs_why_they_wait_and_a_job_run_live(
    served: Served, context: BrowserContext
) -> None:
    page = sign_in(context, served, "member")
    expect(page).to_have_url(f"{served.url}/ui/jobs")
    waiting = page.locator(f"#job-{served.ids['alpha_why']}")
    waits = served.job(served.ids["alpha_why"])
    with served.app.state.sessions() as s:
        reason = why(s, CLUSTER, waits, waits.submitted_at)
    expect(waiting.locator(".why")).to_contain_text(f"{reason.code} {reason.detail}")
    expect(waiting.locator(".why")).to_contain_text(reason.unblock)
    expect(page.locator(f"#job-{served.ids['beta_secret']}")).to_have_count(0)
    assert "beta" not in page.locator("#job-rows").inner_text()
    shot(page, "member-jobs")

    with served.api("member") as api:
        submitted = api.post("/jobs", json={"project": "alpha", "command": ["echo", "hello from job"]})
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    row = page.locator(f"#job-{job_id}")  # appears and ends on the page as it is: no reload
    expect(row).to_have_attribute("data-state", "finished")
    page.click(f"#job-{job_id} a")
    expect(page.locator("#state")).to_contain_text("finished")
    expect(page.locator("#log-stdout")).to_contain_text("hello from job")
    with served.api("member") as api:
        ran_on = api.get(f"/jobs/{job_id}").json()["last_gpus"]
    assert ran_on, "a finished job keeps the GPUs its run held"
    history = page.locator("#history tbody tr")  # its history, with the GPUs it ran on
    expect(history.locator("td:nth-child(2)")).to_have_text(["submitted", "started", "ended"])
    expect(history.nth(1).locator("td:nth-child(4)")).to_have_text(", ".join(ran_on))
    expect(history.nth(2).locator("td:nth-child(5)")).to_have_text("finished: exit code 0")
    expect(page.locator(".facts")).to_contain_text(f"last run on {', '.join(ran_on)}")
    shot(page, "member-job-log")

    page.goto(f"{served.url}/ui/jobs/{served.ids['beta_secret']}")  # another tenant's job: the API's 404
    expect(page.locator("#error")).to_have_text(f"job {served.ids['beta_secret']} not found")
    page.goto(f"{served.url}/ui/admin")
    expect(page.locator("#error")).to_contain_text("is not an admin")


def test_a_member_cancels_a_job(served: Served, context: BrowserContext) -> None:
    page = sign_in(context, served, "member")
    job_id = served.ids["alpha_cancel"]
    page.click(f"#job-{job_id} button.cancel")
    expect(page.locator(f"#job-{job_id}")).to_have_attribute("data-state", "cancelled")
    assert served.job(job_id).state == "cancelled"
    assert served.job(served.ids["alpha_why"]).state == "pending"  # only that one
    shot(page, "member-cancelled")


def test_a_member_sees_only_their_own_balances_and_usage(served: Served, context: BrowserContext) -> None:
    page = sign_in(context, served, "member")
    page.click("nav >> text=Usage")
    expect(page.locator("tr.balance")).to_have_count(1)
    expect(page.locator("tr.balance")).to_have_attribute("data-project", "alpha")
    page.click(".periods a[href$='every=month']")
    charts = page.locator("figure.chart")
    expect(charts).to_have_count(3)
    ended = [served.seeded_at - timedelta(days=days) for project, days, _, _ in HISTORY if project == "alpha"]
    alpha_months = {bucket_of(at, "month") for at in ended}
    for chart in charts.all():
        expect(chart.locator("ul.legend li")).to_have_text(["alpha"])
        expect(chart.locator("rect title")).to_have_count(len(alpha_months))
    assert "beta" not in page.locator("main").inner_text()
    shot(page, "member-usage")


def test_a_reviewer_scores_a_proposal(served: Served, context: BrowserContext) -> None:
    page = sign_in(context, served, "reviewer")
    expect(page).to_have_url(f"{served.url}/ui/programs")
    expect(page.locator("nav >> text=Jobs")).to_have_count(0)
    page.click("text=2026-call")
    alpha, beta = (page.locator(f"#proposal-{served.ids[k]}") for k in ("alpha_proposal", "beta_proposal"))
    expect(alpha.locator(".score")).to_have_text("70.0")
    expect(beta.locator(".score")).to_have_text("—")
    shot(page, "reviewer-proposals")
    beta.locator("a").click()
    page.fill("#score", "87")
    page.fill("#comment", "clear plan, fair size")
    page.click("text=Save review")
    expect(page.locator("tr.review .score")).to_have_text(["87"])
    with served.app.state.sessions() as s:
        stored = s.scalars(
            select(ReviewRow).where(ReviewRow.proposal_id == served.ids["beta_proposal"])
        ).all()
    assert [(r.reviewer_id, r.score, r.comment) for r in stored] == [
        (served.ids["reviewer"], 87, "clear plan, fair size")
    ]
    shot(page, "reviewer-review")
    page.goto(f"{served.url}/ui/admin")
    expect(page.locator("#error")).to_contain_text("is not an admin")


def test_an_admin_sees_power_against_cap_the_queue_awards_and_targets(
    served: Served, context: BrowserContext
) -> None:
    fifo = _release_fifo()
    target = {"name": "outside the capital", "kind": "share", "by": "region", "group": "non_capital"}
    with served.api("admin") as api:
        declared = api.post("/targets", json={**target, "threshold": 30})
        assert declared.status_code == 201, declared.text
        (attained,) = api.get("/targets/attainment").json()["lines"]
        submitted = api.post("/jobs", json={"project": "alpha", "command": ["cat", str(fifo)], "gpus": 2})
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    try:
        wait_until(lambda: served.job(job_id).state == "running", 20, f"job {job_id} never ran")
        page = sign_in(context, served, "admin")
        expect(page).to_have_url(f"{served.url}/ui/admin")
        with served.app.state.sessions() as s:
            (local,) = site_power(s, CLUSTER, served.seeded_at)
        site = page.locator("#site-local")
        expect(site).to_contain_text(f"{local.gpus_busy} / {local.gpus}")
        expect(site.locator(".draw")).to_have_text(f"{local.draw_w / 1000:,.1f} kW")
        expect(site).to_contain_text("100.0 kW")  # the demo site's 0.1 MW cap
        assert local.gpus_busy == 2 and local.draw_w > 0
        expect(page.locator(f"#queued-{job_id}")).to_contain_text("running")
        expect(page.locator(f"#queued-{served.ids['beta_secret']}")).to_contain_text("award-model")
        for project in ("alpha", "beta"):
            expect(page.locator(f"#award-{served.ids[project + '_award']}")).to_contain_text(project)
        declared_row = page.locator(f"#target-{declared.json()['id']}")
        expect(declared_row).to_contain_text("outside the capital")
        expect(declared_row.locator(".status")).to_have_text(attained["status"])
        expect(declared_row).to_contain_text(attained["period"])
        shot(page, "admin")
    finally:
        if served.job(job_id).state == "running":
            _release(fifo)
        fifo.unlink()
        fifo.parent.rmdir()
    wait_until(lambda: served.job(job_id).state == "finished", 20, f"job {job_id} did not end")


def _release_fifo() -> Path:
    """A FIFO a job of another uid can block on (``cat``), in a directory of its own."""
    directory = Path(tempfile.mkdtemp(prefix="gpuc-ui-"))
    directory.chmod(0o755)
    fifo = directory / "release.fifo"
    os.mkfifo(fifo)
    fifo.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    return fifo


def _release(fifo: Path) -> None:
    """Let the job reading ``fifo`` end: open it for writing (which waits for its reader) and close it."""
    with open(fifo, "wb"):
        pass
