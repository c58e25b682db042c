"""Bad requests get a 4xx with a one-line reason and change nothing stored (rows counted and balances
read before and after), and the auto-award endpoint respects capacity, unit, per-organisation cap and
region.

The cases cover what got through before every field had a type with a bound: NUL and other control
characters in any text (a NUL in a job command used to be stored and then break every scheduling cycle),
ids at or past 2**63 (a 500 from SQLite's integer overflow), offsets, durations and counts past what the
calendar, ``seek`` or a 32-bit column hold, NaN and infinities, programs promising GPUs or models the
cluster does not have, and jobs no pool the job accepts could ever run. The test world's cluster is the
``demo`` preset: 2 x 8 H100 and 2 x 4 A100.
"""

from __future__ import annotations

from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest

from gpucommons.clusterfile import load_cluster
from gpucommons.config import Settings
from gpucommons.domain.award import AWARD_UNITS
from gpucommons.domain.speeds import JOB_CLASSES
from gpucommons.errors import InvalidRequestError
from gpucommons.service.routes.jobs import JobState
from gpucommons.service.schemas.allocation import BudgetUnit
from gpucommons.service.schemas.jobs import JobClass
from gpucommons.store import awards as award_repo
from gpucommons.store.awards import AwardRow, ReclaimRow
from gpucommons.store.base import count_rows
from gpucommons.store.calls import ProgramRow, ProposalRow, ReviewRow, create_program
from gpucommons.store.jobs import JOB_STATES, JobRequest, JobRow, submit_job
from gpucommons.store.tenancy import ApiTokenRow, InstitutionRow, MembershipRow, ProjectRow, UserRow
from gpucommons.store.usage import balances
from tests.service.conftest import World

COUNTED = (
    InstitutionRow,
    ProjectRow,
    UserRow,
    MembershipRow,
    ApiTokenRow,
    ProgramRow,
    ProposalRow,
    ReviewRow,
    AwardRow,
    ReclaimRow,
    JobRow,
)
BIG = 2**63  # one past SQLite's largest integer
_NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NUL = "\x00"


def _state(world: World) -> dict[str, Any]:
    """Every table's row count and every balance line: what a refused request must leave as it was."""
    with world.app.state.sessions() as s:
        counts: dict[str, Any] = {t.__name__: count_rows(s, t) for t in COUNTED}
        counts["balances"] = [astuple(b) for b in balances(s, None)]
        return counts


def _program(world: World, **extra: Any) -> int:
    body = {"name": "call", "model": "H100", "capacity_gpus": 16, **extra}
    response = world.client("admin").post("/programs", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _job(**extra: Any) -> dict[str, Any]:
    return {"project": "alpha", "command": ["true"], **extra}


def _program_body(**extra: Any) -> dict[str, Any]:
    return {"name": "p2", "model": "H100", "capacity_gpus": 8, **extra}


def _award(**extra: Any) -> dict[str, Any]:
    return {"project_id": "{alpha}", "program_id": "{program}", "guaranteed_gpus": 8, **extra}


# (caller, method, path, JSON body (or raw text), status, words the detail must contain)
CASES: list[tuple[str, str, str, Any, int, str]] = [
    ("admin", "POST", "/projects", {"name": "x", "institution_id": 999}, 404, "institution"),
    ("admin", "POST", "/programs", {"name": "neg", "model": "H100", "capacity_gpus": -8}, 422, "capacity"),
    ("admin", "POST", "/programs", {"name": "odd", "model": "H100", "capacity_gpus": 12}, 422, "multiple"),
    ("admin", "POST", "/programs", _program_body(discounts={"x": 1}), 422, "discounts"),
    ("admin", "POST", "/programs", _program_body(unit="gpu-years"), 422, "unit"),
    ("member", "POST", "/jobs", _job(job_class="weather"), 422, "job_class"),
    ("admin", "POST", "/institutions", {"name": "KAIST", "kind": "university", "region": "capital"}, 409, ""),
    ("admin", "POST", "/institutions", {"name": "z", "kind": "bank", "region": "capital"}, 422, "kind"),
    ("admin", "POST", "/users", {"name": "", "role": "user"}, 422, "name"),
    ("admin", "POST", "/users", {"name": "u", "role": "god"}, 422, "role"),
    (
        "pi",
        "POST",
        "/proposals",
        {"program_id": "{program}", "project_id": "{alpha}", "requested_gpus": -8},
        422,
        "",
    ),
    (
        "pi",
        "POST",
        "/proposals",
        {"program_id": "{program}", "project_id": "{alpha}", "requested_gpus": 12},
        422,
        "",
    ),
    ("pi", "POST", "/proposals", {"program_id": 999, "project_id": "{alpha}", "requested_gpus": 8}, 404, ""),
    (
        "pi",
        "POST",
        "/proposals",
        {"program_id": "{program}", "project_id": 999, "requested_gpus": 8},
        404,
        "",
    ),
    ("admin", "POST", "/awards", _award(guaranteed_gpus=-8), 422, "guaranteed_gpus"),
    ("admin", "POST", "/awards", _award(guaranteed_gpus=40), 409, "8 GPUs left, 40 asked"),
    ("admin", "POST", "/awards", _award(ends_at="next tuesday"), 422, "ends_at"),
    ("admin", "POST", "/awards", _award(ends_at="2026-05-01T00:00"), 422, "timezone"),
    ("admin", "POST", "/awards", {"project_id": "{alpha}", "program_id": "{program}"}, 422, ""),
    ("admin", "POST", "/users/me/tokens", {"expires_at": "2020-01-01T00:00:00Z"}, 422, "expires_at"),
    ("expired", "POST", "/institutions", {"name": "y", "kind": "sme", "region": "capital"}, 401, ""),
    ("admin", "POST", "/projects/{alpha}/members", {"user_id": 999}, 404, ""),
    ("admin", "POST", "/projects/{alpha}/members", {"user_id": "{member}", "role": "owner"}, 422, "role"),
    # NUL and other control characters, in bodies, lists, paths and queries
    ("member", "POST", "/jobs", _job(command=["echo", "a\x00b"]), 422, "U+0000"),
    ("member", "POST", "/jobs", _job(script="echo a\x00b", command=[]), 422, "U+0000"),
    ("member", "POST", "/jobs", _job(name="x\x1b[31m"), 422, "U+001B"),
    ("member", "POST", "/jobs", _job(project="alpha\x00"), 422, "project"),
    ("member", "POST", "/jobs", _job(models=["H100\x00"]), 422, "models"),
    ("member", "POST", "/jobs", _job(idempotency_key="k\nk"), 422, "idempotency_key"),
    ("member", "POST", "/jobs", _job(workdir="/tmp/\x07"), 422, "workdir"),
    ("member", "POST", "/jobs", _job(time_limit="1h\x00"), 422, "time_limit"),
    ("admin", "POST", "/institutions", {"name": "A\x00B", "kind": "sme", "region": "capital"}, 422, "name"),
    ("admin", "POST", "/users", {"name": "eve\u0085"}, 422, "U+0085"),
    ("admin", "POST", "/programs", _program_body(name="p\tq"), 422, "name"),
    (
        "pi",
        "POST",
        "/proposals",
        {"program_id": "{program}", "project_id": "{alpha}", "requested_gpus": 8, "justification": "why\x00"},
        422,
        "justification",
    ),
    ("admin", "POST", "/users/me/tokens", {"label": "l\x00"}, 422, "label"),
    ("member", "GET", "/jobs?project=alpha%00", None, 422, "project"),
    ("member", "GET", "/usage?project=%00", None, 422, "project"),
    ("member", "GET", "/jobs?state=pending%00", None, 422, "state"),
    # ids at and past 2**63, in paths, queries and bodies
    ("admin", "GET", f"/projects/{BIG}", None, 422, "project_id"),
    ("admin", "GET", f"/projects/{BIG}/members", None, 422, ""),
    ("admin", "DELETE", f"/projects/{{alpha}}/members/{BIG}", None, 422, "user_id"),
    ("admin", "GET", f"/programs/{BIG}", None, 422, ""),
    ("admin", "POST", f"/programs/{BIG}/close", None, 422, ""),
    ("admin", "POST", f"/programs/{BIG}/auto-award", {}, 422, ""),
    ("admin", "GET", f"/proposals/{BIG}", None, 422, ""),
    ("admin", "GET", f"/proposals?program_id={BIG}", None, 422, "program_id"),
    ("reviewer", "POST", f"/proposals/{BIG}/reviews", {"score": 50}, 422, ""),
    ("admin", "GET", f"/awards/{BIG}", None, 422, ""),
    ("admin", "POST", f"/awards/{BIG}/activate", None, 422, ""),
    ("admin", "POST", f"/awards/{BIG}/extend", {"ends_at": "2027-01-01T00:00:00Z"}, 422, ""),
    ("admin", "GET", f"/awards?program_id={BIG}", None, 422, ""),
    ("admin", "GET", f"/jobs/{BIG}", None, 422, "job_id"),
    ("admin", "POST", f"/jobs/{BIG}/cancel", None, 422, ""),
    ("admin", "GET", f"/jobs/{BIG}/why", None, 422, ""),
    ("admin", "GET", f"/jobs/{BIG}/logs", None, 422, ""),
    ("admin", "POST", f"/users/{BIG}/tokens", {}, 422, "user_id"),
    ("admin", "GET", "/projects/0", None, 422, "project_id"),
    ("admin", "POST", "/projects", {"name": "x", "institution_id": BIG}, 422, "institution_id"),
    ("admin", "POST", "/projects/{alpha}/members", {"user_id": BIG}, 422, "user_id"),
    ("pi", "POST", "/proposals", {"program_id": BIG, "project_id": "{alpha}", "requested_gpus": 8}, 422, ""),
    ("admin", "POST", "/awards", _award(proposal_id=BIG), 422, "proposal_id"),
    ("admin", "POST", "/awards/reclaim", {"utilization_by_award": {str(BIG): 0.1}}, 422, "utilization"),
    ("member", "GET", f"/jobs?project={BIG}", None, 404, "project"),
    # counts, sizes and durations past any sensible maximum
    ("member", "GET", "/jobs/1/logs?offset=100000000000000000000", None, 422, "offset"),
    ("admin", "POST", "/programs", _program_body(duration_days=99_999_999), 422, "duration_days"),
    (
        "admin",
        "POST",
        "/programs",
        _program_body(reclaim_below_utilization=0.5, reclaim_after_days=10**9),
        422,
        "reclaim_after_days",
    ),
    ("admin", "POST", "/programs", _program_body(unit_gpus=2**40), 422, "unit_gpus"),
    ("admin", "POST", "/programs", _program_body(price_krw_per_gpu_hour=10**30), 422, "price"),
    ("member", "POST", "/jobs", _job(gpus=2**40), 422, "gpus"),
    ("member", "POST", "/jobs", _job(gpus=2**31, gpus_per_node=2**31), 422, "gpus_per_node"),
    ("member", "POST", "/jobs", _job(command=["x"] * 5000), 422, "command"),
    ("admin", "POST", "/awards", _award(gpu_hours_budget=1e300), 422, "gpu_hours_budget"),
    (
        "pi",
        "POST",
        "/proposals",
        {"program_id": "{program}", "project_id": "{alpha}", "requested_gpus": 2**40},
        422,
        "requested_gpus",
    ),
    ("admin", "POST", "/awards", _award(starts_at="9999-12-01T00:00:00Z"), 422, "starts_at"),
    ("admin", "POST", "/awards", _award(starts_at="0001-01-01T00:00:00+01:00"), 422, "starts_at"),
    ("admin", "POST", "/awards/{award}/extend", {"ends_at": "9999-12-31T23:59:59-12:00"}, 422, "ends_at"),
    ("admin", "POST", "/awards/reclaim", {"utilization_by_award": {"1": 7.5}}, 422, "utilization"),
    # NaN and infinities, which Python's JSON reader accepts and the response encoder cannot write
    (
        "admin",
        "POST",
        "/programs",
        '{"name": "n", "model": "H100", "capacity_gpus": 8, "non_capital_bonus": NaN}',
        422,
        "finite",
    ),
    (
        "admin",
        "POST",
        "/awards",
        '{"project_id": {alpha}, "program_id": {program}, "gpu_hours_budget": Infinity}',
        422,
        "finite",
    ),
    # programs promising what the cluster does not have
    ("admin", "POST", "/programs", _program_body(capacity_gpus=24), 422, "more than the 16 H100 GPUs"),
    ("admin", "POST", "/programs", _program_body(model="H200"), 422, "has no H200 GPUs"),
    ("admin", "POST", "/programs", _program_body(model="TPU9"), 422, "not in the accelerator catalog"),
    ("admin", "POST", "/programs", _program_body(model="a100", capacity_gpus=16), 422, "8 A100 GPUs"),
    # jobs no accepted pool could ever run, refused naming the pool they could use
    ("member", "POST", "/jobs", _job(gpus=24, models=["A100"]), 422, "the largest A100 pool has 8 GPUs"),
    ("member", "POST", "/jobs", _job(gpus=12, models=["H100"], gpus_per_node=3), 422, "H100 pool has 16"),
    ("member", "POST", "/jobs", _job(gpus=17), 422, "the largest H100 pool has 16 GPUs (2 nodes x 8)"),
]


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("{"):
        return ids[value.strip("{}")]
    return value


def _seed_award(world: World, program: int) -> int:
    response = world.client("admin").post("/awards", json=_fill(_award(), {**world.ids, "program": program}))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "want", "words"),
    CASES,
    ids=[f"{c[2][:40]} {c[3]!r:.50}" for c in CASES],
)
def test_bad_input_is_refused_and_stores_nothing(
    world: World, who: str, method: str, path: str, body: Any, want: int, words: str
) -> None:
    program = _program(world)
    ids = {**world.ids, "program": program, "award": _seed_award(world, program)}
    before = _state(world)
    client = world.client(who)
    url = path.replace("{alpha}", str(ids["alpha"])).replace("{award}", str(ids["award"]))
    if body is None:
        response = client.request(method, url)
    elif isinstance(body, str):  # raw JSON text, for what a JSON encoder would not write
        text = body.replace("{alpha}", str(ids["alpha"])).replace("{program}", str(ids["program"]))
        response = client.request(method, url, content=text, headers={"Content-Type": "application/json"})
    else:
        response = client.request(method, url, json=_fill(body, ids))
    assert response.status_code == want, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    assert words in detail, detail
    assert _state(world) == before


def _even_gangs(world: World) -> None:
    settings: Settings = world.app.state.settings
    world.app.state.settings = settings.model_copy(update={"backend": "slurm"})


@pytest.mark.parametrize(
    ("backend", "gpus", "want"),
    [("local", 13, 201), ("slurm", 13, 422), ("slurm", 16, 201), ("slurm", 12, 201), ("slurm", 7, 201)],
)
def test_a_job_an_even_gang_backend_can_never_run_is_refused(
    world: World, backend: str, gpus: int, want: int
) -> None:
    """13 GPUs on 8-GPU nodes: the local backend splits them 8 + 5, but Slurm asks for the same GPUs on
    every node, so the even-gangs rule shapes the job as 13 nodes of 1, and the demo has 4 nodes."""
    if backend == "slurm":
        _even_gangs(world)
    before = _state(world)
    response = world.client("member").post("/jobs", json=_job(gpus=gpus, models=["H100"]))
    assert response.status_code == want, response.text
    if want == 422:
        detail = response.json()["detail"]
        assert "13 GPU(s) as 1 per node" in detail and "same GPUs on every node" in detail, detail
        assert "the largest H100 pool has 16 GPUs (2 nodes x 8)" in detail, detail
        assert _state(world) == before


def test_text_keeps_tabs_and_line_breaks_where_they_make_sense(world: World) -> None:
    """Scripts, argv elements and justifications are free text: tabs and line breaks are kept."""
    job = world.client("member").post("/jobs", json=_job(command=["python3", "-c", "print(1)\n\tprint(2)"]))
    assert job.status_code == 201, job.text
    assert job.json()["command"][2] == "print(1)\n\tprint(2)"
    script = world.client("member").post("/jobs", json={"project": "alpha", "script": "echo a\r\necho b\n"})
    assert script.status_code == 201, script.text


def test_the_store_refuses_nul_even_without_the_api(world: World) -> None:
    """The scheduler cannot start a NUL-holding command; the store refuses one from any caller."""
    request = JobRequest(gpus=1, command=("echo", "a\x00b"))
    with world.app.state.sessions() as s:
        with pytest.raises(InvalidRequestError, match="NUL"):
            submit_job(s, load_cluster("demo"), world.ids["alpha"], 1, request, world.clock.now)
        assert count_rows(s, JobRow) == 0


def test_an_award_on_a_stored_program_too_long_for_the_calendar_is_refused(world: World) -> None:
    """A program stored before durations were bounded must not turn the next award into a crash."""
    program = _program(world)
    with world.app.state.sessions() as s:
        row = s.get(ProgramRow, program)
        assert row is not None
        row.duration_days = 99_999_999
        s.commit()
    before = _state(world)
    response = world.client("admin").post("/awards", json=_fill(_award(), {**world.ids, "program": program}))
    assert response.status_code == 422, response.text
    assert "past the end of the calendar" in response.json()["detail"]
    assert _state(world) == before
    with world.app.state.sessions() as s, pytest.raises(InvalidRequestError):
        terms = award_repo.AwardTerms(world.ids["alpha"], program, guaranteed_gpus=8)
        award_repo.create_award(s, terms, world.clock.now + timedelta(days=1))


def test_the_state_filter_lists_exactly_the_stored_job_states() -> None:
    assert set(get_args(JobState)) == set(JOB_STATES)


def test_the_api_takes_exactly_the_known_job_classes_and_budget_units() -> None:
    assert get_args(JobClass) == JOB_CLASSES
    assert get_args(BudgetUnit) == AWARD_UNITS


@pytest.mark.parametrize(
    ("store_call", "detail"),
    [
        (lambda s, c: create_program(s, name="u", model="H100", capacity_gpus=8, unit="x"), "budget unit"),
        (
            lambda s, c: submit_job(s, c, 1, 1, JobRequest(gpus=1, command=["true"], job_class="x"), _NOW),
            "job class",
        ),
    ],
)
def test_the_store_refuses_an_unknown_budget_unit_or_job_class(
    world: World, store_call: Any, detail: str
) -> None:
    before = _state(world)
    with world.app.state.sessions() as s, pytest.raises(InvalidRequestError, match=detail):
        store_call(s, load_cluster("demo"))
    assert _state(world) == before


def test_auto_award_over_http_respects_capacity_cap_and_region(world: World) -> None:
    admin, reviewer = world.client("admin"), world.client("reviewer")
    program = _program(world, capacity_gpus=16, unit_gpus=4, cap_per_org_gpus=12, non_capital_bonus=10)
    # alpha: KAIST (non-capital), score 70 + 10; beta: Seoul AI (capital), score 75.
    world.client("pi").post(
        "/proposals", json={"program_id": program, "project_id": world.ids["alpha"], "requested_gpus": 16}
    )
    world.client("outsider").post(
        "/proposals", json={"program_id": program, "project_id": world.ids["beta"], "requested_gpus": 8}
    )
    proposals = {p["project_id"]: p["id"] for p in admin.get("/proposals").json()}
    reviewer.post(f"/proposals/{proposals[world.ids['alpha']]}/reviews", json={"score": 70})
    reviewer.post(f"/proposals/{proposals[world.ids['beta']]}/reviews", json={"score": 75})
    made = admin.post(f"/programs/{program}/auto-award", json={})
    assert made.status_code == 201, made.text
    got = [(a["project_id"], a["guaranteed_gpus"]) for a in made.json()]
    assert got == [(world.ids["alpha"], 12), (world.ids["beta"], 4)]
    again = admin.post(f"/programs/{program}/auto-award", json={})
    assert again.json() == []
