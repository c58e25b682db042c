"""What reservations cost the service (design note 0016, "Reservations in the service"): checking a new
one against those stored, and reading the live ones into each scheduler cycle's snapshot.

    .venv/bin/python benchmarks/reservation_checks.py                       # SQLite, in a temporary file
    .venv/bin/python benchmarks/reservation_checks.py --existing 400 --database-url postgresql+psycopg://USER@HOST/EMPTY_DB

The database must be empty. One pool of 1,024 H200 (128 nodes of 8) and ``--existing`` live
reservations of 8 to 64 GPUs over 40 projects: a third nightly without end, a third weekly for a
year, a third once, spread over the year. Printed, median of ``--runs``: the baseline (reading the
projects, which every cycle does already), reading the live reservations as the snapshot does, and
creating (then rolling back) a one-off, a weekly and a nightly-without-end reservation, each checked
against every stored one (the last: 366 occurrences, the horizon's worth).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site
from gpucommons.errors import ConflictError
from gpucommons.store.base import make_engine, session_factory, upgrade
from gpucommons.store.reservations import ReservationSpec, active_reservations, create_reservation
from gpucommons.store.tenancy import ProjectRow, create_institution, create_project, create_user

NOW = datetime(2027, 1, 1, tzinfo=UTC)
DAY_S = 86_400
PROJECTS = 40


def cluster() -> Cluster:
    return Cluster.build("bench", (Site("site"),), (Pool("h200", "site", CATALOG["H200"], 128, 8),))


def fill(session: Session, existing: int, seed: int) -> int:
    """``existing`` reservations that fit the pool together; returns the admin's id."""
    rng = random.Random(seed)
    institution = create_institution(session, "KISTI", "research_institute", "non_capital")
    projects = [create_project(session, f"p{i}", institution.id).id for i in range(PROJECTS)]
    admin = create_user(session, "ops", "admin").id
    made = 0
    while made < existing:
        kind = made % 3
        start = NOW + timedelta(hours=1 + rng.randrange(360 * 24))
        every, occurrences, duration = (
            (DAY_S, None, 6 * 3_600)
            if kind == 0
            else (7 * DAY_S, 52, DAY_S)
            if kind == 1
            else (None, None, 2 * DAY_S)
        )
        spec = ReservationSpec(
            rng.choice(projects), "H200", 8 * rng.randint(1, 8), start, float(duration), every, occurrences
        )
        try:
            create_reservation(session, cluster(), spec, admin, NOW)
        except ConflictError:
            session.rollback()
            continue
        session.commit()
        made += 1
    return admin


def median_s(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--existing", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2027)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        with sessions() as session:
            filled = time.perf_counter()
            admin = fill(session, args.existing, args.seed)
            made_s = time.perf_counter() - filled
            print(f"{engine.dialect.name}: {args.existing} live reservations, made in {made_s:.1f} s")
            tenants = {i: n for i, n in session.execute(select(ProjectRow.id, ProjectRow.name))}

            def read_projects() -> object:
                return session.execute(select(ProjectRow.id, ProjectRow.name, ProjectRow.sovereign)).all()

            def snapshot_read() -> object:
                return active_reservations(session, tenants, NOW)

            def create(every: int | None, occurrences: int | None, duration_s: float) -> Callable[[], object]:
                spec = ReservationSpec(1, "H200", 8, NOW + timedelta(days=3), duration_s, every, occurrences)

                def run() -> object:
                    try:
                        return create_reservation(session, cluster(), spec, admin, NOW)
                    except ConflictError:
                        return None
                    finally:
                        session.rollback()

                return run

            rows = [
                ("baseline: read the projects", read_projects),
                ("read the live reservations (each cycle)", snapshot_read),
                ("create a one-off, checked", create(None, None, 6 * 3_600.0)),
                ("create a weekly x52, checked", create(7 * DAY_S, 52, float(DAY_S))),
                ("create a nightly without end, checked", create(DAY_S, None, 6 * 3_600.0)),
            ]
            for label, work in rows:
                print(f"  {label:<42} {1_000 * median_s(args.runs, work):8.2f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
