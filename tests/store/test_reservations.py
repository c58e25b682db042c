"""Reservations against the database (``store/reservations.py``) on SQLite and PostgreSQL: what is
stored, every refusal with its one line and nothing stored, overlaps of one-off and recurring
reservations against the pool, a PI's reservations within the project's awards, cancelling, and the
live reservations the scheduler's snapshot carries, in policy seconds."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site, Topology
from gpucommons.domain.reservation import Reservation
from gpucommons.errors import (
    ConflictError,
    GpucError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from gpucommons.store import awards
from gpucommons.store.base import count_rows, make_engine, session_factory, to_s, upgrade
from gpucommons.store.calls import create_program
from gpucommons.store.reservations import (
    ReservationRow,
    ReservationSpec,
    active_reservations,
    cancel_reservation,
    create_reservation,
    get_reservation,
    list_reservations,
)
from gpucommons.store.scratch import scratch_postgres
from gpucommons.store.tenancy import create_institution, create_project, create_user
from tests.components import require_component, wait_until
from tests.db_fixtures import POSTGRES_ENV

NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
START = datetime(2027, 1, 5, 14, 0, tzinfo=UTC)
H, DAY = 3_600, 86_400


def cluster() -> Cluster:
    """48 H200 (4 nodes in NVLink domains of 2 and blocks of 3, and 2 more nodes) and 16 A100."""
    pools = (
        Pool("h200-a", "lab", CATALOG["H200"], 4, 8, topology=Topology(nvlink_domain_nodes=2, block_nodes=3)),
        Pool("h200-b", "lab", CATALOG["H200"], 2, 8),
        Pool("a100", "lab", CATALOG["A100"], 4, 4),
    )
    return Cluster.build("lab", (Site("lab"),), pools)


def seed(session: Session) -> dict[str, int]:
    institution = create_institution(session, "KAIST", "university", "non_capital")
    ids = {name: create_project(session, name, institution.id).id for name in ("consortium", "other")}
    ids["admin"] = create_user(session, "ops", "admin").id
    ids["pi"] = create_user(session, "pi").id
    session.commit()
    return ids


def spec(ids: dict[str, int], **fields: object) -> ReservationSpec:
    base = ReservationSpec(
        project_id=ids["consortium"], model="H200", gpus=16, start_at=START, duration_s=24 * H
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def reserve(session: Session, ids: dict[str, int], **fields: object) -> ReservationRow:
    row = create_reservation(session, cluster(), spec(ids, **fields), ids["admin"], NOW)
    session.commit()
    return row


def test_a_reservation_is_stored_as_asked_with_the_end_of_its_last_occurrence(session: Session) -> None:
    ids = seed(session)
    once = reserve(session, ids, model="h200", within="nvlink", lend_idle=True)
    weekly = reserve(session, ids, gpus=8, start_at=START + timedelta(days=2), every_s=7 * DAY, occurrences=4)
    nightly = reserve(session, ids, gpus=8, model="A100", duration_s=6 * H, every_s=DAY)
    session.expire_all()
    got = get_reservation(session, once.id)
    assert (got.model, got.gpus, got.within, got.lend_idle) == (
        "H200",
        16,
        "nvlink",
        True,
    )  # the pool's spelling
    assert (got.start_at, got.end_at, got.last_end_at) == (
        START,
        START + timedelta(hours=24),
        START + timedelta(hours=24),
    )
    assert (got.created_by, got.created_at, got.cancelled_at) == (ids["admin"], NOW, None)
    assert get_reservation(session, weekly.id).last_end_at == START + timedelta(days=2 + 21, hours=24)
    assert get_reservation(session, nightly.id).last_end_at is None
    assert got.state_at(NOW) == "scheduled" and got.state_at(START) == "active"
    assert got.state_at(START + timedelta(hours=24)) == "ended"
    assert got.window_at(NOW) == (START, START + timedelta(hours=24))
    with pytest.raises(NotFoundError, match="reservation 999 not found"):
        get_reservation(session, 999)


Invalid = InvalidRequestError
BAD: list[tuple[dict[str, object], type[GpucError], str]] = [
    ({"model": "B200"}, InvalidRequestError, "no pool has model 'B200'; this cluster has A100, H200"),
    ({"gpus": 12}, InvalidRequestError, "12 GPUs is not a multiple of H200's 8 GPUs a node"),
    ({"gpus": 56}, InvalidRequestError, "56 GPUs of H200 is more than its pool: 48 GPUs in all"),
    ({"gpus": 0}, InvalidRequestError, "not a multiple"),
    ({"start_at": NOW - timedelta(seconds=1)}, InvalidRequestError, "is in the past"),
    ({"duration_s": 0.0}, InvalidRequestError, "must last more than 0 s"),
    ({"every_s": 12 * H}, InvalidRequestError, "every 43200 s is less than 86400 s"),
    ({"duration_s": 60.0, "every_s": 1_800}, InvalidRequestError, "repeats at most hourly"),
    ({"occurrences": 3}, InvalidRequestError, "occurrences need a repetition"),
    ({"every_s": DAY, "occurrences": 0}, InvalidRequestError, "occurrences must be at least 1"),
    ({"within": "rack"}, InvalidRequestError, "within must be nvlink, block or empty"),
    ({"gpus": 24, "within": "nvlink"}, Invalid, "not fit in one NVLink domain: H200's largest holds 16"),
    ({"gpus": 32, "within": "block"}, Invalid, "not fit in one network block: H200's largest holds 24"),
    ({"start_at": datetime(9999, 12, 1, tzinfo=UTC)}, InvalidRequestError, "past the end of the calendar"),
    ({"project_id": 999}, NotFoundError, "project 999 not found"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "error", "said"), BAD, ids=[s for _, _, s in BAD])
def test_bad_reservations_are_refused_in_one_line_and_store_nothing(
    session: Session, fields: dict[str, object], error: type[GpucError], said: str
) -> None:
    ids = seed(session)
    with pytest.raises(error) as raised:
        create_reservation(session, cluster(), spec(ids, **fields), ids["admin"], NOW)
    assert said in str(raised.value) and "\n" not in str(raised.value), str(raised.value)
    session.rollback()
    assert count_rows(session, ReservationRow) == 0


def test_overlaps_beyond_the_pool_are_refused_naming_the_others(session: Session) -> None:
    ids = seed(session)
    first = reserve(session, ids, gpus=32)  # 14:00 on the 5th for a day
    nightly = reserve(
        session, ids, gpus=8, start_at=START + timedelta(hours=10), duration_s=6 * H, every_s=DAY
    )
    assert reserve(session, ids, gpus=8, project_id=ids["other"]).id  # 48: the pool, full at 00:00-06:00
    with pytest.raises(ConflictError) as raised:
        create_reservation(
            session, cluster(), spec(ids, gpus=8, start_at=START + timedelta(hours=12)), ids["admin"], NOW
        )
    assert str(raised.value) == (
        f"8 GPUs of H200 would overlap reservation {first.id}, reservation {nightly.id}, reservation "
        f"{nightly.id + 1} at 2027-01-06T02:00+00:00: 56 GPUs reserved at once, the pool has 48"
    )
    session.rollback()
    # where the nightly one is not in force, there is room, and a different model does not count
    assert reserve(session, ids, gpus=8, start_at=START + timedelta(hours=4), duration_s=6 * H).id
    assert reserve(session, ids, gpus=16, model="A100", start_at=START).id
    # the nightly one meets a reservation on its 10th night, far from the first
    tenth = START + timedelta(days=9, hours=11)
    with pytest.raises(
        ConflictError, match=rf"would overlap reservation {nightly.id} at 2027-01-15T01:00\+00:00: 56 GPUs"
    ):
        create_reservation(
            session, cluster(), spec(ids, gpus=48, start_at=tenth, duration_s=H), ids["admin"], NOW
        )
    session.rollback()
    assert reserve(session, ids, gpus=40, start_at=tenth, duration_s=H).id  # 8 + 40: room
    # a cancelled reservation holds nothing
    cancel_reservation(session, first.id, NOW)
    session.commit()
    assert reserve(session, ids, gpus=32, start_at=START + timedelta(hours=1), duration_s=H).id
    assert count_rows(session, ReservationRow) == 7


def award(session: Session, ids: dict[str, int], gpus: int, model: str = "H200", days: int = 30) -> None:
    program = create_program(
        session, name=f"call-{model}-{gpus}-{days}", model=model, capacity_gpus=64, duration_days=days
    )
    terms = awards.AwardTerms(
        ids["consortium"], program.id, guaranteed_gpus=gpus, starts_at=NOW - timedelta(days=1)
    )
    awards.activate_award(session, awards.create_award(session, terms, NOW).id, NOW)
    session.commit()


def test_a_pi_reserves_only_within_the_projects_awards(session: Session) -> None:
    ids = seed(session)
    award(session, ids, 16)
    award(session, ids, 8, model="A100")  # another model's guarantee does not count for H200
    award(session, ids, 8, days=2)  # ends before the reservation does
    as_pi = {"user_id": ids["pi"], "now": NOW, "within_award": True}
    row = create_reservation(session, cluster(), spec(ids, gpus=8), **as_pi)  # type: ignore[arg-type]
    session.commit()
    refusals = [
        (spec(ids, gpus=16), f"would reserve 24 GPUs of H200 at 2027-01-05T14:00+00:00 counting reservation "
                             f"{row.id}; its active awards guarantee 16 until 2027-01-06T14:00+00:00"),
        (spec(ids, gpus=8, every_s=DAY), "a reservation repeating without end outlasts every award"),
        (spec(ids, gpus=8, start_at=START + timedelta(days=40)), "its active awards guarantee 0"),
    ]  # fmt: skip
    for asked, said in refusals:
        with pytest.raises(PermissionDeniedError) as raised:
            create_reservation(session, cluster(), asked, **as_pi)  # type: ignore[arg-type]
        assert said in str(raised.value), str(raised.value)
        session.rollback()
    create_reservation(session, cluster(), spec(ids, gpus=8, start_at=START + timedelta(hours=1)), **as_pi)  # type: ignore[arg-type]
    create_reservation(session, cluster(), spec(ids, gpus=16, start_at=START + timedelta(days=2)), **as_pi)  # type: ignore[arg-type]
    create_reservation(session, cluster(), spec(ids, gpus=32), ids["admin"], NOW)  # an admin: beyond awards
    session.commit()
    assert count_rows(session, ReservationRow) == 4


def test_cancel_is_kept_once_and_the_snapshot_carries_live_reservations_in_policy_seconds(
    session: Session,
) -> None:
    ids = seed(session)
    once = reserve(session, ids, lend_idle=True, within="block")
    weekly = reserve(
        session, ids, gpus=8, model="A100", every_s=7 * DAY, occurrences=2, project_id=ids["other"]
    )
    gone = reserve(session, ids, gpus=8, start_at=START + timedelta(days=3))
    first = cancel_reservation(session, gone.id, NOW + timedelta(minutes=1)).cancelled_at
    again = cancel_reservation(session, gone.id, NOW + timedelta(minutes=5))
    session.commit()
    assert first == again.cancelled_at == NOW + timedelta(minutes=1) and again.state_at(NOW) == "cancelled"
    assert again.window_at(NOW) is None
    tenants = {ids["consortium"]: "consortium", ids["other"]: "other"}
    start_s = to_s(START)
    assert active_reservations(session, tenants, NOW) == (
        Reservation(once.id, "consortium", 16, start_s, start_s + 24 * H, "H200", "block", True),
        Reservation(
            weekly.id, "other", 8, start_s, start_s + 24 * H, "A100", every_s=7.0 * DAY, occurrences=2
        ),
    )
    # after the one-off ends only the weekly one is live; after its second occurrence, none
    assert [r.id for r in active_reservations(session, tenants, START + timedelta(days=1))] == [weekly.id]
    assert active_reservations(session, tenants, START + timedelta(days=8)) == ()
    # a project the cycle has not read yet waits for the next cycle
    assert [r.id for r in active_reservations(session, {ids["other"]: "other"}, NOW)] == [weekly.id]
    assert [r.id for r in list_reservations(session, {ids["other"]})] == [weekly.id]
    assert [r.id for r in list_reservations(session, None, NOW)] == [once.id, weekly.id]
    assert [r.id for r in list_reservations(session)] == [once.id, weekly.id, gone.id]


@pytest.mark.postgres
def test_on_postgresql_two_creations_of_one_model_take_turns(tmp_path: Path) -> None:
    """The second creation waits for the first one's transaction (an advisory lock per model), then
    sees its reservation and is refused, instead of both passing the check on a pool with room for
    one. (SQLite has one writer at a time: the service's ``write_lock``.)"""
    admin_url = os.environ.get(POSTGRES_ENV)
    require_component(bool(admin_url), f"PostgreSQL ({POSTGRES_ENV})")
    assert admin_url is not None
    with scratch_postgres(admin_url, "gpuc_test_") as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            sessions = session_factory(engine)
            with sessions() as first, sessions() as second:
                ids = seed(first)
                create_reservation(first, cluster(), spec(ids, gpus=48), ids["admin"], NOW)  # not committed
                outcome: list[BaseException | ReservationRow] = []

                def other() -> None:
                    try:
                        outcome.append(
                            create_reservation(second, cluster(), spec(ids, gpus=8), ids["admin"], NOW)
                        )
                    except BaseException as exc:  # handed to the test's thread
                        outcome.append(exc)

                thread = threading.Thread(target=other)
                thread.start()
                wait_until(lambda: _waiting_for_advisory_lock(first), 10, "the second creation did not wait")
                assert not outcome
                first.commit()
                thread.join(10)
                [result] = outcome
                assert isinstance(result, ConflictError) and "the pool has 48" in str(result), result
        finally:
            engine.dispose()


def _waiting_for_advisory_lock(session: Session) -> bool:
    query = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    return bool(session.connection().execute(query).scalar())
