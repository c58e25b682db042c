"""Every operation of the OpenAPI document, fuzzed by schemathesis against the in-process app, as the
admin and as a plain project member: no server error, no response outside the documented statuses,
bodies and content types, and every request the schema calls invalid refused with a 4xx.

All of schemathesis' checks run except ``positive_data_acceptance``: it expects every request that
matches the schema to succeed, and the service refuses, by design, schema-valid requests that break a
rule the schema cannot state (a capacity that is not a multiple of the unit, an award for a program
with no GPUs left, a job no pool can hold) with a documented 4xx.

Run it with ``pytest -m slow tests/service/test_fuzz.py`` (CI runs it through ``pytest -m ""``). It is
seeded and derandomized, at most ``MAX_EXAMPLES`` cases per operation and caller, so it takes about a
minute per database. One database serves a whole module (each world is seeded like the service tests'
``world``): hypothesis forbids a function-scoped fixture across its examples, and objects made by one
operation are there for the next to find.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case

from gpucommons.config import Settings
from gpucommons.service.app import create_app
from gpucommons.store.base import upgrade
from gpucommons.store.scratch import scratch_postgres
from tests.components import require_component
from tests.db_fixtures import POSTGRES_ENV
from tests.service.conftest import Clock, World, _seed

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 25
SEED = 2026
CALLERS = ("admin", "member")


def _schema() -> schemathesis.BaseSchema:
    """The app's OpenAPI document (no database is touched to build it) with the fuzzing settings."""
    config = schemathesis.Config(seed=SEED)
    project = config.projects.default
    # The caller's token is sent by the test; a request without one is the ``ignored_auth`` check's job.
    project.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, with_security_parameters=False)
    project.checks.update(excluded_check_names=["positive_data_acceptance"])
    home = Path(tempfile.gettempdir())
    spec = create_app(Settings(home=home, database_url="sqlite://"), migrate=False).openapi()
    return schemathesis.openapi.from_dict(spec, config=config)


schema = _schema()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fuzz_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded service, as ``tests.service.conftest.world`` builds it, on a fresh SQLite file or a
    fresh PostgreSQL database (``GPUC_TEST_POSTGRES_URL``), shared by every operation of the module."""
    home = tmp_path_factory.mktemp("fuzz")
    database: AbstractContextManager[str]
    if request.param == "sqlite":
        database = nullcontext(f"sqlite:///{home / 'gpuc.db'}")
    else:
        admin_url = os.environ.get(POSTGRES_ENV)
        require_component(bool(admin_url), f"PostgreSQL ({POSTGRES_ENV})")
        assert admin_url is not None
        database = scratch_postgres(admin_url, "gpuc_test_")
    with database as url:
        upgrade(url)
        app = create_app(Settings(home=home, database_url=url), clock=Clock(), migrate=False)
        world = _seed(app)
        world.clock.now += timedelta(hours=2)
        yield world
        app.state.engine.dispose()


@pytest.fixture(params=CALLERS)
def caller(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_api_conforms_to_its_schema(case: Case[Any], fuzz_world: World, caller: str) -> None:
    # The schema was read without an app; the requests, and the checks' own probes, go to this world's.
    case.operation.app = case.operation.schema.app = fuzz_world.app
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_world.tokens[caller]}"})
