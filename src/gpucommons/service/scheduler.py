"""Wiring the live engine from settings, and running it in the server process.

``build_engine(settings)`` picks the backend by name (``BACKENDS``: ``local`` or ``slurm``, the latter
configured by the TOML file ``settings.slurm_config``), the cluster from ``settings.cluster`` and the
policy from the registry; ``start_in_background(app, settings)`` runs its loop on a daemon thread beside
the API, lets job routes wake it (``app.state.scheduler_wake``), so a submission starts within moments
instead of waiting for the next interval, and adds the engine's counters to the app's ``/metrics``.
"""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Callable
from dataclasses import replace

from fastapi import FastAPI

from gpucommons.backends.local import LocalBackend
from gpucommons.backends.slurm import make_slurm_backend
from gpucommons.clusterfile import load_cluster
from gpucommons.config import DEFAULT_POLICY, Settings
from gpucommons.engine.live import EngineOptions, LiveEngine, live_commons
from gpucommons.engine.ports import Backend
from gpucommons.errors import ConfigError, UnknownNameError
from gpucommons.policy.quota import ReclaimPreemptor
from gpucommons.policy.registry import build_policy
from gpucommons.service.backendmetrics import install_backend_metrics
from gpucommons.service.livemetrics import cycle_histogram, timed
from gpucommons.store.base import make_engine, session_factory
from gpucommons.store.scheduler_state import DatabaseSchedulerState

LOCAL_GRACE_S = 10.0


def _local(settings: Settings) -> Backend:
    return LocalBackend(
        settings.home / "backend" / "local",
        grace_s=LOCAL_GRACE_S,
        job_uids=settings.job_uids,
        home=settings.home,
    )


def slurm_settings(settings: Settings) -> dict[str, object]:
    """The Slurm backend's settings from ``settings.slurm_config`` (none: every key at its default,
    which suits a cluster file imported with ``gpuc site import-slurm``)."""
    if settings.slurm_config is None:
        return {}
    try:
        return tomllib.loads(settings.slurm_config.expanduser().read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the Slurm backend settings {settings.slurm_config}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Slurm backend settings {settings.slurm_config}: {exc}") from None


def _slurm(settings: Settings) -> Backend:
    return make_slurm_backend(slurm_settings(settings))


BACKENDS: dict[str, Callable[[Settings], Backend]] = {"local": _local, "slurm": _slurm}


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
    backend = build_backend(settings)
    cluster = load_cluster(settings.cluster)
    config = replace(
        build_policy(policy, commons=live_commons(backend)), priority_classes=settings.priority_table
    )
    if isinstance(config.preemptor, ReclaimPreemptor):
        config = replace(config, preemptor=replace(config.preemptor, min_run_s=settings.reclaim_min_run_s))
    return LiveEngine(
        DatabaseSchedulerState(sessions, cluster),
        backend,
        cluster,
        config,
        EngineOptions(
            logs_dir=settings.home / "jobs", lease_ttl_s=lease_ttl_s, max_grace_s=settings.max_grace_s
        ),
    )


def start_in_background(app: FastAPI, settings: Settings, policy: str = DEFAULT_POLICY) -> threading.Event:
    """Run the scheduler loop on a daemon thread; set the returned event to stop it."""
    engine = build_engine(settings, policy)
    install_backend_metrics(app.state.metrics_registry, engine)
    setattr(engine, "step", timed(engine.step, cycle_histogram(app.state.metrics_registry)))  # noqa: B010
    app.state.cluster = engine.cluster
    app.state.scheduler_wake = engine.wake
    stop = threading.Event()
    thread = threading.Thread(
        target=engine.run, args=(stop, settings.scheduler_interval_s), name="gpuc-scheduler", daemon=True
    )
    thread.start()
    return stop
