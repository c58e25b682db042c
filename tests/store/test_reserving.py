"""The pure rules behind a reservation's checks (``reserving.py``): a model's pool in whole nodes, the
occurrences of a recurring reservation inside a span, and the first instant overlapping reservations
hold more than a capacity."""

from __future__ import annotations

import pytest

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site, Topology
from gpucommons.domain.reservation import Reservation
from gpucommons.reserving import first_overbooking, last_end_s, model_pool, windows

H = 3_600.0
DAY = 86_400.0


def cluster() -> Cluster:
    pools = (
        Pool("h200-a", "lab", CATALOG["H200"], 4, 8, topology=Topology(nvlink_domain_nodes=2, block_nodes=3)),
        Pool("h200-b", "lab", CATALOG["H200"], 2, 8),
        Pool("mixed-4", "lab", CATALOG["A100"], 3, 4),
        Pool("mixed-8", "lab", CATALOG["A100"], 1, 8),
    )
    return Cluster.build("lab", (Site("lab"),), pools)


def test_a_models_pool_counts_whole_nodes_of_every_pool_of_it() -> None:
    h200 = model_pool(cluster(), "h200")
    assert h200 is not None
    assert (h200.model, h200.node_gpus, h200.gpus) == ("H200", 8, 48)
    assert (h200.nvlink_gpus, h200.block_gpus) == (16, 24)  # h200-a's domain of 2 nodes, block of 3
    a100 = model_pool(cluster(), "A100")
    assert a100 is not None  # nodes of 4 and 8: reserved in 8s, so two 4-GPU nodes make one unit
    assert (a100.node_gpus, a100.gpus) == (8, 8 + 8)  # 3 x 4 holds one unit of 8, the 8-GPU node another
    assert model_pool(cluster(), "B200") is None


@pytest.mark.parametrize(
    ("reservation", "since", "until", "want"),
    [
        (Reservation(1, "t", 8, 10 * H, 12 * H), 0.0, DAY, [(10 * H, 12 * H)]),
        (Reservation(1, "t", 8, 10 * H, 12 * H), 12 * H, DAY, []),  # ends as the span begins
        (Reservation(1, "t", 8, 0.0, 6 * H, every_s=DAY, occurrences=3), 0.0, 10 * DAY,
         [(0.0, 6 * H), (DAY, DAY + 6 * H), (2 * DAY, 2 * DAY + 6 * H)]),
        (Reservation(1, "t", 8, 0.0, 6 * H, every_s=DAY), 5 * DAY + 7 * H, 7 * DAY + H,
         [(6 * DAY, 6 * DAY + 6 * H), (7 * DAY, 7 * DAY + 6 * H)]),
        (Reservation(1, "t", 8, 0.0, 6 * H, every_s=DAY), 5 * DAY + 5 * H, 5 * DAY + 6 * H,
         [(5 * DAY, 5 * DAY + 6 * H)]),
    ],
)  # fmt: skip
def test_windows_inside_a_span(
    reservation: Reservation, since: float, until: float, want: list[tuple[float, float]]
) -> None:
    assert list(windows(reservation, since, until)) == want


def test_last_end() -> None:
    assert last_end_s(Reservation(1, "t", 8, 0.0, H)) == H
    assert last_end_s(Reservation(1, "t", 8, 0.0, H, every_s=DAY, occurrences=3)) == 2 * DAY + H
    assert last_end_s(Reservation(1, "t", 8, 0.0, H, every_s=DAY)) is None


def test_the_first_overbooking_names_the_reservations_in_force_then() -> None:
    nightly = Reservation(7, "a", 32, 0.0, 6 * H, every_s=DAY)  # 00:00-06:00 every night, no end
    weekly = Reservation(8, "b", 16, 2 * DAY + 5 * H, 2 * DAY + 9 * H, every_s=7 * DAY, occurrences=4)
    one_off = Reservation(0, "c", 8, 9 * DAY + 3 * H, 9 * DAY + 4 * H)
    assert first_overbooking(one_off, [nightly, weekly], 48) is None  # 32 + 8: room for it
    clash = first_overbooking(one_off, [nightly, weekly], 39)
    assert clash is not None and (clash.at_s, clash.gpus, clash.others) == (9 * DAY + 3 * H, 40, (7,))
    # a night the weekly one also holds: its second occurrence starts on day 9 at 05:00
    late = Reservation(0, "c", 8, 9 * DAY + 5 * H, 9 * DAY + 5 * H + 1)
    clash = first_overbooking(late, [nightly, weekly], 48)
    assert clash is not None and (clash.gpus, clash.others) == (56, (7, 8))
    # back to back is no overlap: an occurrence holds its GPUs up to its end, not at it
    after = Reservation(0, "c", 48, 6 * H, DAY)
    assert first_overbooking(after, [nightly], 48) is None
    # the new one recurring: its 30th night meets a one-off far ahead
    far = Reservation(5, "d", 40, 29 * DAY + H, 29 * DAY + 2 * H)
    clash = first_overbooking(Reservation(0, "e", 16, 0.0, 6 * H, every_s=DAY), [far], 48)
    assert clash is not None and (clash.at_s, clash.others) == (29 * DAY + H, (5,))
    # outside the horizon, not looked at
    assert first_overbooking(Reservation(0, "e", 16, 0.0, 6 * H, every_s=DAY), [far], 48, 20 * DAY) is None
