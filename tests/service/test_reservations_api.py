"""Reservations over HTTP (design note 0016, "Reservations in the service") on both databases, on the
test world's ``demo`` cluster (2 x 8 H100, 2 x 4 A100): who may reserve, read and cancel; a PI within
the project's awards; what a reservation reads as; and bad input refused with one line and nothing
stored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gpucommons.store import awards as award_repo
from gpucommons.store.base import count_rows
from gpucommons.store.calls import create_program
from gpucommons.store.reservations import ReservationRow
from tests.service.conftest import World

DAY = 86_400


def _body(world: World, **fields: Any) -> dict[str, Any]:
    start = (world.clock.now + timedelta(days=1)).isoformat()
    return {"project": "alpha", "model": "H100", "gpus": 8, "start_at": start, "duration_s": DAY, **fields}


def _award_alpha(world: World, gpus: int) -> None:
    """An active award of ``gpus`` guaranteed H100 for alpha over the next 30 days."""
    with world.app.state.sessions() as s:
        program = create_program(s, name="call", model="H100", capacity_gpus=16, duration_days=30)
        terms = award_repo.AwardTerms(world.ids["alpha"], program.id, guaranteed_gpus=gpus)
        award_repo.activate_award(s, award_repo.create_award(s, terms, world.clock.now).id, world.clock.now)
        s.commit()


def _count(world: World) -> int:
    with world.app.state.sessions() as s:
        return count_rows(s, ReservationRow)


def test_who_may_reserve_read_and_cancel(world: World) -> None:
    admin, pi, member = world.client("admin"), world.client("pi"), world.client("member")
    made = admin.post("/reservations", json=_body(world, gpus=16, within="block", lend_idle=True))
    assert made.status_code == 201, made.text
    got = made.json()
    start = world.clock.now + timedelta(days=1)
    assert {k: got[k] for k in ("project", "model", "gpus", "within", "lend_idle", "state", "every_s")} == {
        "project": "alpha", "model": "H100", "gpus": 16, "within": "block", "lend_idle": True,
        "state": "scheduled", "every_s": None,
    }  # fmt: skip
    assert got["next_start_at"] == got["start_at"] == start.isoformat().replace("+00:00", "Z")
    assert got["created_by"] == world.ids["admin"] and got["last_end_at"] == got["end_at"]
    # a PI within the project's awards only: none yet, then 8 guaranteed GPUs
    refused = pi.post("/reservations", json=_body(world, start_at=(start + timedelta(days=2)).isoformat()))
    assert refused.status_code == 403 and "its active awards guarantee 0" in refused.json()["detail"]
    _award_alpha(world, 8)
    weekly = {"start_at": (start + timedelta(days=2)).isoformat(), "every_s": 7 * DAY, "occurrences": 3}
    mine = pi.post("/reservations", json=_body(world, **weekly))
    assert mine.status_code == 201, mine.text
    assert mine.json()["last_end_at"] is not None and mine.json()["occurrences"] == 3
    for who, status, said in [
        ("member", 403, "is not a PI of project"),
        ("reviewer", 403, "is not a PI of project"),
        ("outsider", 404, "project 'alpha' does not exist"),
    ]:
        response = world.client(who).post("/reservations", json=_body(world, gpus=8))
        assert (response.status_code, said in response.json()["detail"]) == (status, True), response.text
    ids = [got["id"], mine.json()["id"]]
    for who, seen in [("admin", ids), ("reviewer", ids), ("pi", ids), ("member", ids), ("outsider", [])]:
        assert [r["id"] for r in world.client(who).get("/reservations").json()] == seen, who
    assert [r["id"] for r in member.get("/reservations", params={"project": "alpha"}).json()] == ids
    hidden = world.client("outsider").get("/reservations", params={"project": "alpha"})
    assert (hidden.status_code, hidden.json()) == (404, {"detail": "project 'alpha' does not exist"})
    shown = world.client("outsider").get(f"/reservations/{ids[0]}")
    assert (shown.status_code, shown.json()) == (404, {"detail": f"reservation {ids[0]} not found"})
    assert member.get(f"/reservations/{ids[0]}").json() == got
    # cancel: the project's PIs and admins; once, whatever the number of calls
    assert member.post(f"/reservations/{ids[0]}/cancel").status_code == 403
    assert world.client("outsider").post(f"/reservations/{ids[0]}/cancel").status_code == 404
    first = pi.post(f"/reservations/{ids[0]}/cancel").json()
    world.clock.now += timedelta(minutes=5)
    again = admin.post(f"/reservations/{ids[0]}/cancel").json()
    assert first["state"] == again["state"] == "cancelled" and first["cancelled_at"] == again["cancelled_at"]
    assert again["next_start_at"] is None
    assert [r["id"] for r in admin.get("/reservations").json()] == ids[1:]
    assert [r["id"] for r in admin.get("/reservations", params={"all": True}).json()] == ids
    # the room the cancelled one held is free again
    assert admin.post("/reservations", json=_body(world, gpus=8)).status_code == 201


def test_bad_reservations_get_one_line_and_store_nothing(world: World) -> None:
    admin = world.client("admin")
    held = admin.post("/reservations", json=_body(world, gpus=8, every_s=DAY, duration_s=6 * 3_600))
    assert held.status_code == 201, held.text
    now = world.clock.now
    bad: list[tuple[dict[str, Any], int, str]] = [
        (_body(world, gpus=12), 422, "12 GPUs is not a multiple of H100's 8 GPUs a node"),
        (_body(world, gpus=24), 422, "24 GPUs of H100 is more than its pool: 16 GPUs in all"),
        (_body(world, gpus=0), 422, "gpus: must be at least 1"),
        (_body(world, model="B200"), 422, "no pool has model 'B200'; this cluster has A100, H100"),
        (_body(world, start_at=(now - timedelta(minutes=1)).isoformat()), 422, "is in the past"),
        (_body(world, start_at="2027-01-05T14:00:00"), 422, "start_at"),  # no timezone
        (_body(world, duration_s=0), 422, "duration_s: must be at least 1"),
        (_body(world, every_s=1_800), 422, "every_s: must be at least 3600"),
        (_body(world, every_s=3_600), 422, "not before an occurrence ends"),
        (_body(world, occurrences=2), 422, "occurrences need a repetition"),
        (_body(world, within="rack"), 422, "within"),
        (_body(world, within="nvlink", gpus=16), 422, "do not fit in one NVLink domain"),
        (_body(world, colour="red"), 422, "colour"),
        (_body(world, gpus=16, start_at=(now + timedelta(days=3, hours=2)).isoformat()), 409,
         f"would overlap reservation {held.json()['id']}"),
        (_body(world, project="nope"), 404, "project 'nope' does not exist"),
    ]  # fmt: skip
    for body, status, said in bad:
        response = admin.post("/reservations", json=body)
        assert response.status_code == status, (body, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail and said in detail, detail
    assert _count(world) == 1
    for path in ("/reservations/999999", "/reservations/0", "/reservations/x"):
        assert admin.get(path).status_code in (404, 422)
    assert admin.post("/reservations/999999/cancel").json() == {"detail": "reservation 999999 not found"}


@pytest.mark.parametrize("who", ["member", "reviewer"])
def test_readers_who_may_not_cancel_leave_it_as_it_was(world: World, who: str) -> None:
    made = world.client("admin").post("/reservations", json=_body(world)).json()
    assert world.client(who).post(f"/reservations/{made['id']}/cancel").status_code == 403
    assert world.client("admin").get(f"/reservations/{made['id']}").json()["state"] == "scheduled"
