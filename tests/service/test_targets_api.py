"""Declared targets over HTTP (design note 0014) on both databases, over the usage history of the report
tests (March: KAIST's university 10 GPU-hours, Seoul AI's startup 4; April: the startup 16): who may
declare, list and read them, their attainment, the gauges at ``/metrics``, the notice of a missed
period, and bad input refused with one line and nothing stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import World
from tests.service.test_reports import record

STARTUPS = {"name": "startups", "kind": "share", "by": "kind", "group": "startup", "threshold": 15}
OUTSIDE = {"name": "outside", "kind": "share", "by": "region", "group": "non_capital", "threshold": 80}
BAD = [
    ({**STARTUPS, "by": "colour"}, 422, "by"),
    ({**STARTUPS, "by": "site", "group": "seoul"}, 422, "by"),
    ({**STARTUPS, "group": "unicorn"}, 422, "unknown kind 'unicorn'"),
    ({**STARTUPS, "threshold": 150}, 422, "a share must lie within 0..100 %, got 150 %"),
    ({**STARTUPS, "threshold": -1}, 422, "threshold: must be at least 0"),
    ({**STARTUPS, "kind": "wait", "by": "model", "group": "H100"}, 422, "cannot group by 'model'"),
    ({**STARTUPS, "percentile": 90}, 422, "only a wait target takes a percentile"),
    ({**STARTUPS, "program_id": 999}, 404, "program 999 not found"),
    (STARTUPS, 409, "target 'startups' already exists"),
]


def _declare(world: World, body: dict[str, Any]) -> int:
    response = world.client("admin").post("/targets", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_admins_declare_staff_read_tenants_see_nothing_and_bad_input_stores_nothing(world: World) -> None:
    record(world)
    startups, outside = _declare(world, STARTUPS), _declare(world, OUTSIDE)
    for who in ("reviewer", "pi", "member", "outsider"):
        assert world.client(who).post("/targets", json={**STARTUPS, "name": who}).status_code == 403
    for who in ("pi", "member", "outsider"):
        for path in ("/targets", "/targets/attainment"):
            response = world.client(who).get(path)
            assert (
                response.status_code == 403 and "neither a reviewer nor an admin" in response.json()["detail"]
            )
    listed = world.client("reviewer").get("/targets").json()
    assert [(t["id"], t["unit"], t["description"]) for t in listed] == [
        (startups, "%", "kind startup: share of GPU-hours >= 15 % per month"),
        (outside, "%", "region non_capital: share of GPU-hours >= 80 % per month"),
    ]
    report = world.client("reviewer").get("/targets/attainment", params={"period": "2026-03"}).json()
    got = {line["name"]: line for line in report["lines"]}
    assert report["period"] == "2026-03"
    assert (got["startups"]["status"], got["startups"]["met"]) == ("met", True)
    assert got["startups"]["value"] == pytest.approx(100 * 4 / 14)
    assert (got["startups"]["group_gpu_hours"], got["startups"]["scope_gpu_hours"]) == (4.0, 14.0)
    assert got["outside"]["status"] == "missed"
    assert got["outside"]["margin"] == pytest.approx(100 * 10 / 14 - 80)
    latest = world.client("admin").get("/targets/attainment").json()  # the clock is in March 2026
    assert latest["period"] == "latest closed" and {x["period"] for x in latest["lines"]} == {"2026-02"}
    assert {x["status"] for x in latest["lines"]} == {"no data"}
    assert world.client("reviewer").delete(f"/targets/{startups}").status_code == 403
    assert world.client("admin").delete(f"/targets/{startups}").status_code == 204
    gone = world.client("admin").delete(f"/targets/{startups}")
    assert (gone.status_code, gone.json()) == (404, {"detail": f"target {startups} not found"})
    assert [t["id"] for t in world.client("admin").get("/targets").json()] == [outside]
    _declare(world, STARTUPS)
    admin = world.client("admin")
    for body, status, said in BAD:
        response = admin.post("/targets", json=body)
        assert response.status_code == status, response.text
        detail = response.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail and said in detail, detail
    assert len(admin.get("/targets").json()) == 2
    for period in ("March", "2026-13", "x" * 300):
        bad = admin.get("/targets/attainment", params={"period": period})
        assert bad.status_code == 422 and "\n" not in bad.json()["detail"]


def test_the_gauges_and_the_notice_of_a_missed_month(world: World) -> None:
    record(world)
    startups, outside = _declare(world, STARTUPS), _declare(world, OUTSIDE)
    world.clock.now = datetime(2026, 4, 10, tzinfo=UTC)  # March closed, April so far: the startup's 16
    text = world.client(None).get("/metrics").text
    samples = {
        (s.name, s.labels["target"], s.labels.get("window")): s.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("gpuc_target")
        for s in family.samples
    }
    assert samples == {
        ("gpuc_target_threshold", str(startups), None): 15.0,
        ("gpuc_target_threshold", str(outside), None): 80.0,
        ("gpuc_target_attainment", str(startups), "closed"): pytest.approx(100 * 4 / 14),
        ("gpuc_target_attainment", str(startups), "current"): 100.0,
        ("gpuc_target_attainment", str(outside), "closed"): pytest.approx(100 * 10 / 14),
        ("gpuc_target_attainment", str(outside), "current"): 0.0,
        ("gpuc_target_met", str(startups), "closed"): 1.0,
        ("gpuc_target_met", str(startups), "current"): 1.0,
        ("gpuc_target_met", str(outside), "closed"): 0.0,
        ("gpuc_target_met", str(outside), "current"): 0.0,
    }
    admin = world.client("admin")
    step = admin.post("/lifecycle/run", json={"now": "2026-04-10T00:00:00Z"}).json()
    assert admin.post("/lifecycle/run", json={"now": "2026-04-11T00:00:00Z"}).json()["notices"] == []
    [notice] = [n for n in admin.get("/notices").json() if n["kind"] == "target_missed"]
    assert notice["id"] in step["notices"] and notice["project_id"] is None
    assert notice["subject"] == "[gpucommons] target outside missed in 2026-03"
    assert all(n["kind"] != "target_missed" for n in world.client("pi").get("/notices").json())
