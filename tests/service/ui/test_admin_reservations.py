"""The admin page lists the reservations still to end, with their project, GPUs, state and the
occurrence in force or next; a cancelled one leaves the list."""

from __future__ import annotations

from datetime import timedelta

from tests.service.conftest import World
from tests.service.ui.test_pages import signed_in


def test_the_admin_page_lists_the_reservations_still_to_end(world: World) -> None:
    admin = world.client("admin")
    start = world.clock.now + timedelta(days=1)
    body = {
        "project": "alpha",
        "model": "H100",
        "gpus": 8,
        "start_at": start.isoformat(),
        "duration_s": 6 * 3_600,
    }
    nightly = admin.post(
        "/reservations", json={**body, "every_s": 86_400, "occurrences": 5, "lend_idle": True}
    )
    once = admin.post("/reservations", json={**body, "start_at": (start + timedelta(hours=7)).isoformat()})
    assert nightly.status_code == once.status_code == 201, nightly.text
    page = signed_in(world, "admin").get("/ui/admin").text
    row = page.split(f'id="reservation-{nightly.json()["id"]}"', 1)[1].split("</tr>", 1)[0]
    for shown in (
        "alpha",
        "8 · H100, idle lent",
        "scheduled",
        f"{start:%Y-%m-%d %H:%M} UTC",
        "every 24 h, 5 times",
    ):
        assert shown in row, row
    assert f'id="reservation-{once.json()["id"]}"' in page
    assert admin.post(f"/reservations/{once.json()['id']}/cancel").status_code == 200
    assert f'id="reservation-{once.json()["id"]}"' not in signed_in(world, "admin").get("/ui/admin").text
