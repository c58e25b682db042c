"""Migration 0006 turns stored float money into whole won (rounded half-up) on both databases, keeps
every row and what references it, and downgrades back to floats."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import Connection, inspect, text

from gpucommons.store.base import downgrade, make_engine, upgrade

BEFORE = "0006_money_won-1"
PRICES = {1: 1999.5, 2: 2000.4, 3: 0.0, 4: 2.4999}
COSTS = {1: 666.6666666, 2: 0.49, 3: 2.5, 4: 1e12 + 0.5, 5: 0.0}
WANT_PRICES = {1: 2000, 2: 2000, 3: 0, 4: 2}
WANT_COSTS = {1: 667, 2: 0, 3: 3, 4: 1_000_000_000_001, 5: 0}


@contextmanager
def connected(url: str) -> Iterator[Connection]:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def _seed_float_money(url: str) -> None:
    """Programs and usage rows as the float schema stored them, with proposals and awards pointing at
    the programs (so a table rebuild that dropped ``programs`` would show)."""
    ts = "2026-03-02 09:00:00+00:00"
    with connected(url) as conn:
        conn.execute(
            text(
                "INSERT INTO institutions (id, name, kind, region, youth_startup, created_at) "
                "VALUES (1, 'Busan Vision Startup', 'startup', 'non_capital', :t, :ts)"
            ),
            {"t": True, "ts": ts},
        )
        conn.execute(text("INSERT INTO projects (id, name, institution_id, sovereign, created_at) "
                          "VALUES (1, 'vision', 1, :f, :ts)"), {"f": False, "ts": ts})  # fmt: skip
        conn.execute(text("INSERT INTO users (id, name, role, created_at) VALUES (1, 'admin', 'admin', :ts)"),
                     {"ts": ts})  # fmt: skip
        for pid, price in PRICES.items():
            conn.execute(
                text(
                    "INSERT INTO programs (id, name, model, capacity_gpus, unit_gpus, non_capital_bonus, "
                    "duration_days, price_krw_per_gpu_hour, discounts, youth_startup_extra_discount, "
                    "status, created_at) VALUES (:id, :name, 'H100', 16, 8, 0.0, 30, :price, '{}', 0.0, "
                    "'open', :ts)"
                ),
                {"id": pid, "name": f"call-{pid}", "price": price, "ts": ts},
            )
        conn.execute(
            text(
                "INSERT INTO awards (id, project_id, program_id, model, guaranteed_gpus, starts_at, "
                "ends_at, status, gpu_hours_used, reclaimed_gpus, created_at) VALUES (1, 1, 1, 'H100', 8, "
                ":ts, '2026-06-01 00:00:00+00:00', 'active', 0.0, 0, :ts)"
            ),
            {"ts": ts},
        )
        conn.execute(
            text(
                "INSERT INTO jobs (id, project_id, user_id, name, command, workdir, gpus, accepted_models, "
                "time_limit_s, priority_class, preemptible, state, reason_code, reason, submitted_at, "
                "backend, backend_ref, restarts, borrowing, attained_gpu_s, award_id) VALUES (1, 1, 1, "
                "'train', '[\"true\"]', '', 2, '[]', 600.0, 'normal', :t, 'finished', '', '', :ts, "
                "'local', '', 0, :f, 1200.0, 1)"
            ),
            {"t": True, "f": False, "ts": ts},
        )
        for uid, cost in COSTS.items():
            conn.execute(
                text(
                    "INSERT INTO usage (id, job_id, project_id, award_id, started_at, ended_at, gpus, model, "
                    "gpu_hours, energy_kwh, cost_krw, co2_kg, flops) VALUES (:id, 1, 1, 1, :ts, :ts, 2, "
                    "'H100', 0.33, 0.3, :cost, 0.1, 1e18)"
                ),
                {"id": uid, "cost": cost, "ts": ts},
            )


def _money(url: str) -> tuple[dict[int, object], dict[int, object]]:
    with connected(url) as conn:
        prices = {i: v for i, v in conn.execute(text("SELECT id, price_krw_per_gpu_hour FROM programs"))}
        costs = {i: v for i, v in conn.execute(text("SELECT id, cost_krw FROM usage"))}
    return prices, costs


def _column_types(url: str) -> dict[str, sa.types.TypeEngine[object]]:
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return {
            "price": next(
                c["type"] for c in found.get_columns("programs") if c["name"] == "price_krw_per_gpu_hour"
            ),
            "cost": next(c["type"] for c in found.get_columns("usage") if c["name"] == "cost_krw"),
        }
    finally:
        engine.dispose()


def test_upgrade_rounds_float_money_to_whole_won(db_url: str) -> None:
    upgrade(db_url, BEFORE)
    _seed_float_money(db_url)
    upgrade(db_url)
    prices, costs = _money(db_url)
    assert prices == WANT_PRICES and costs == WANT_COSTS
    assert all(type(v) is int for v in (*prices.values(), *costs.values()))
    types = _column_types(db_url)
    assert all(isinstance(t, sa.Integer) for t in types.values()), types
    with connected(db_url) as conn:  # what referenced the programs is untouched
        assert conn.execute(text("SELECT program_id FROM awards")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM usage WHERE job_id = 1")).scalar_one() == len(COSTS)


def test_downgrade_turns_won_back_into_floats(db_url: str) -> None:
    upgrade(db_url, BEFORE)
    _seed_float_money(db_url)
    upgrade(db_url)
    downgrade(db_url, BEFORE)
    prices, costs = _money(db_url)
    assert prices == {k: float(v) for k, v in WANT_PRICES.items()}
    assert costs == {k: float(v) for k, v in WANT_COSTS.items()}
    assert all(isinstance(t, sa.Float) for t in _column_types(db_url).values())
    upgrade(db_url)
    assert _money(db_url) == (WANT_PRICES, WANT_COSTS)
