"""The dashboard's pages through a test client: sign-in and its cookie, the forms' CSRF and origin
checks, and that every page refuses what the API refuses, with the API's status and words (another
tenant's objects are its 404, admin pages its 403), storing nothing."""

from __future__ import annotations

import re
import warnings

from sqlalchemy import func, select

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from gpucommons.clusterfile import load_cluster
from gpucommons.store.calls import ReviewRow, create_program, submit_proposal
from gpucommons.store.jobs import JobRequest, JobRow, submit_job
from gpucommons.store.tenancy import revoke_token, set_membership, token_holder
from tests.service.conftest import World


def seed(world: World) -> dict[str, int]:
    """A pending job of alpha's member, and a proposal of alpha and of beta to a program."""
    with world.app.state.sessions() as s:
        program = create_program(
            s, name="call", model="H100", capacity_gpus=16, unit_gpus=8, duration_days=30
        )
        now = world.clock.now
        request = JobRequest(gpus=1, command=["true"], name="alpha-job")
        job, _ = submit_job(s, load_cluster("demo"), world.ids["alpha"], world.ids["member"], request, now)
        alpha = submit_proposal(s, program.id, world.ids["alpha"], world.ids["pi"], 8, "alpha's plan", now)
        beta = submit_proposal(s, program.id, world.ids["beta"], world.ids["outsider"], 8, "beta's plan", now)
        s.commit()
        return {"job": job.id, "alpha_proposal": alpha.id, "beta_proposal": beta.id, "program": program.id}


def browser(world: World) -> TestClient:
    client = world.client(None)
    client.follow_redirects = False
    return client


def signed_in(world: World, who: str) -> TestClient:
    client = browser(world)
    answer = client.post("/ui/signin", data={"token": world.tokens[who]})
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(client: TestClient, path: str = "/ui/jobs") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert found is not None
    return found[1]


def error_of(page_text: str) -> str:
    found = re.search(r'<p class="error" id="error">(.*?)</p>', page_text)
    assert found is not None, page_text
    return str(found[1]).replace("&#39;", "'")


def job_state(world: World, job_id: int) -> str:
    with world.app.state.sessions() as s:
        row: JobRow | None = s.get(JobRow, job_id)
        assert row is not None
        return row.state


def review_count(world: World) -> int:
    with world.app.state.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(ReviewRow)) or 0)


def test_signing_in_sets_a_strict_http_only_cookie_and_lands_on_the_roles_page(world: World) -> None:
    for who, home in (("admin", "/ui/admin"), ("reviewer", "/ui/programs"), ("member", "/ui/jobs")):
        answer = browser(world).post("/ui/signin", data={"token": world.tokens[who]})
        assert (answer.status_code, answer.headers["location"]) == (303, home)
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"gpuc_ui_token={world.tokens[who]};")
        assert {"HttpOnly", "Path=/ui", "SameSite=strict"} <= {part.strip() for part in cookie.split(";")}


def test_a_refused_token_is_a_401_page_and_sets_no_cookie(world: World) -> None:
    for token, said in (("expired", "API token expired at"), ("unknown", "unknown API token"), ("", "paste")):
        answer = browser(world).post("/ui/signin", data={"token": world.tokens[token] if token else ""})
        assert answer.status_code == 401
        assert "set-cookie" not in answer.headers
        assert said in error_of(answer.text)


def test_without_a_sign_in_every_page_sends_to_the_sign_in_page_and_forms_change_nothing(
    world: World,
) -> None:
    ids = seed(world)
    client = browser(world)
    for path in ("/ui/", "/ui/jobs", "/ui/jobs/rows", f"/ui/jobs/{ids['job']}", "/ui/usage", "/ui/admin"):
        answer = client.get(path)
        assert (answer.status_code, answer.headers["location"]) == (303, "/ui/signin"), path
    assert client.post(f"/ui/jobs/{ids['job']}/cancel", data={"csrf": "x"}).status_code == 303
    assert job_state(world, ids["job"]) == "pending"


def test_a_revoked_token_ends_the_session(world: World) -> None:
    client = signed_in(world, "member")
    assert client.get("/ui/jobs").status_code == 200
    with world.app.state.sessions() as s:
        holder = token_holder(s, world.tokens["member"])
        assert holder is not None
        revoke_token(s, holder.token_id, world.clock.now)
        s.commit()
    answer = client.get("/ui/jobs")
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/signin")
    assert answer.headers["set-cookie"].startswith('gpuc_ui_token="";')


def test_sign_out_forgets_the_token(world: World) -> None:
    client = signed_in(world, "member")
    answer = client.post("/ui/signout", data={"csrf": csrf_of(client)})
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/signin")
    assert client.get("/ui/jobs").status_code == 303


def test_a_form_without_the_sessions_csrf_token_or_from_another_origin_is_refused(world: World) -> None:
    ids = seed(world)
    member = signed_in(world, "member")
    other_session = csrf_of(signed_in(world, "pi"))
    cancel = f"/ui/jobs/{ids['job']}/cancel"
    for fields in ({"csrf": ""}, {"csrf": "0" * 64}, {"csrf": other_session}):
        answer = member.post(cancel, data=fields)
        assert answer.status_code == 403, fields
        assert "out of date" in error_of(answer.text)
    foreign = member.post(cancel, data={"csrf": csrf_of(member)}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert error_of(foreign.text) == "a form sent from 'https://evil.example' is not accepted here"
    assert job_state(world, ids["job"]) == "pending"
    same_site = member.post(cancel, data={"csrf": csrf_of(member)}, headers={"Origin": "http://testserver"})
    assert (same_site.status_code, same_site.headers["location"]) == (303, "/ui/jobs")
    assert job_state(world, ids["job"]) == "cancelled"


def test_another_tenants_objects_answer_the_apis_404_and_stay_unchanged(world: World) -> None:
    ids = seed(world)
    outsider = signed_in(world, "outsider")
    api = world.client("outsider")
    for page, api_path in (
        (f"/ui/jobs/{ids['job']}", f"/jobs/{ids['job']}"),
        (f"/ui/proposals/{ids['alpha_proposal']}", f"/proposals/{ids['alpha_proposal']}"),
    ):
        answer = outsider.get(page)
        assert answer.status_code == 404
        assert error_of(answer.text) == api.get(api_path).json()["detail"]
    refused = outsider.post(f"/ui/jobs/{ids['job']}/cancel", data={"csrf": csrf_of(outsider)})
    assert refused.status_code == 404
    assert job_state(world, ids["job"]) == "pending"
    listed = outsider.get("/ui/jobs").text + outsider.get("/ui/jobs/rows").text
    assert "alpha-job" not in listed and f'id="job-{ids["job"]}"' not in listed
    assert "alpha" not in outsider.get(f"/ui/programs/{ids['program']}").text


def test_only_admins_get_the_admin_page(world: World) -> None:
    for who in ("reviewer", "pi", "member", "outsider"):
        answer = signed_in(world, who).get("/ui/admin")
        assert answer.status_code == 403
        assert error_of(answer.text) == f"user '{who}' is not an admin"
    assert signed_in(world, "admin").get("/ui/admin").status_code == 200


def test_reviews_keep_the_apis_rules_and_bad_scores_store_nothing(world: World) -> None:
    ids = seed(world)
    with world.app.state.sessions() as s:  # the reviewer also works in alpha
        set_membership(s, world.ids["alpha"], world.ids["reviewer"], "member")
        s.commit()
    reviewer = signed_in(world, "reviewer")
    csrf = csrf_of(reviewer, "/ui/programs")
    own = reviewer.post(f"/ui/proposals/{ids['alpha_proposal']}/reviews", data={"csrf": csrf, "score": "90"})
    assert own.status_code == 403
    assert "cannot score its proposal" in error_of(own.text)
    for score in ("", "abc", "-1", "101", "7.5"):
        bad = reviewer.post(
            f"/ui/proposals/{ids['beta_proposal']}/reviews", data={"csrf": csrf, "score": score}
        )
        assert bad.status_code == 422, score
    member = signed_in(world, "member")
    refused = member.post(
        f"/ui/proposals/{ids['beta_proposal']}/reviews", data={"csrf": csrf_of(member), "score": "90"}
    )
    assert refused.status_code == 404  # beta's proposal is not the member's to see
    assert review_count(world) == 0
    good = reviewer.post(f"/ui/proposals/{ids['beta_proposal']}/reviews", data={"csrf": csrf, "score": "64"})
    assert (good.status_code, good.headers["location"]) == (303, f"/ui/proposals/{ids['beta_proposal']}")
    assert review_count(world) == 1


def test_pages_carry_their_security_headers(world: World) -> None:
    page = signed_in(world, "member").get("/ui/usage")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert browser(world).get("/ui/static/refresh.js").status_code == 200
