"""Wiring the live engine from settings, and running it in the server process.

``build_engine(settings)`` picks the backend by name (``BACKENDS``), the cluster from
``settings.cluster`` and the policy from the registry; ``start_in_background(app, settings)`` runs its
loop on a daemon thread beside the API and lets job routes wake it (``app.state.scheduler_wake``), so a
submission starts within moments instead of waiting for the next interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastapi import FastAPI

from gpucommons.backends.local import LocalBackend
from gpucommons.clusterfile import load_cluster
from gpucommons.config import Settings
from gpucommons.engine.live import EngineOptions, LiveEngine
from gpucommons.engine.ports import Backend
from gpucommons.errors import UnknownNameError
from gpucommons.policy.registry import build_policy
from gpucommons.store.base import make_engine, session_factory

DEFAULT_POLICY = "quota"
LOCAL_GRACE_S = 10.0


def _local(settings: Settings) -> Backend:
    return LocalBackend(settings.home / "backend" / "local", grace_s=LOCAL_GRACE_S)


BACKENDS: dict[str, Callable[[Settings], Backend]] = {"local": _local}


def build_backend(settings: Settings) -> Backend:
    try:
        factory = BACKENDS[settings.backend]
    except KeyError:
        raise UnknownNameError(
            f"unknown backend {settings.backend!r}; known: {', '.join(sorted(BACKENDS))}"
        ) from None
    return factory(settings)


def build_engine(settings: Settings, policy: str = DEFAULT_POLICY, lease_ttl_s: float = 15.0) -> LiveEngine:
    sessions = session_factory(make_engine(settings.database_url))
    return LiveEngine(
        sessions,
        build_backend(settings),
        load_cluster(settings.cluster),
        build_policy(policy),
        EngineOptions(logs_dir=settings.home / "jobs", lease_ttl_s=lease_ttl_s),
    )


def start_in_background(app: FastAPI, settings: Settings, policy: str = DEFAULT_POLICY) -> threading.Event:
    """Run the scheduler loop on a daemon thread; set the returned event to stop it."""
    engine = build_engine(settings, policy)
    app.state.cluster = engine.cluster
    app.state.scheduler_wake = engine.wake
    stop = threading.Event()
    thread = threading.Thread(
        target=engine.run, args=(stop, settings.scheduler_interval_s), name="gpuc-scheduler", daemon=True
    )
    thread.start()
    return stop
