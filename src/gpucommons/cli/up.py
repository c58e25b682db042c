"""``gpuc up`` (the whole commons on the embedded default) and ``gpuc scheduler`` (the loop alone).

``gpuc up`` migrates the SQLite database under ``GPUC_HOME``, makes sure an ``admin`` user exists and
keeps the admin token stored by the last start while the database still accepts it (else issues one,
never expiring unless ``--token-expires-days``), and, unless ``--empty``, a demo institution, project
and active award, so a newcomer can ``gpuc submit`` at once (``service/bootstrap.py``). It writes the
URL and token to ``GPUC_HOME/credentials.json`` (the CLI on this machine then needs no ``gpuc login``)
and serves the API with the scheduler loop in-process.
``--backend slurm`` (or ``GPUC_BACKEND=slurm``) executes on a Slurm cluster instead of local processes;
``--cluster`` then names the file ``gpuc site import-slurm`` wrote, so gpucommons places jobs on Slurm's
own nodes, and ``--slurm-config`` (``GPUC_SLURM_CONFIG``) the backend settings written beside it.
The server side is imported only when a command runs, so ``gpuc --help`` starts fast.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from gpucommons.cli.credentials import Credentials, save_credentials
from gpucommons.config import DEFAULT_POLICY, Settings
from gpucommons.errors import ConfigError

out = Console(highlight=False, soft_wrap=True)


BackendOption = Annotated[
    str | None, typer.Option(help="execution backend: local or slurm (default: GPUC_BACKEND or local)")
]
ClusterOption = Annotated[
    str | None, typer.Option(help="cluster preset or TOML file (default: GPUC_CLUSTER or demo)")
]
SlurmConfigOption = Annotated[
    Path | None,
    typer.Option(help="Slurm backend settings TOML (default: GPUC_SLURM_CONFIG), see import-slurm"),
]


def settings_from_options(**options: Any) -> Settings:
    """Settings from the environment, with the command-line options that were given on top; a bad
    value (option or ``GPUC_*`` variable) is one line naming the setting, not a traceback."""
    try:
        return Settings(**{name: value for name, value in options.items() if value is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"setting {where}: {first['msg']}") from None


def up(
    home: Annotated[Path | None, typer.Option(help="state directory (default: GPUC_HOME or ~/.gpuc)")] = None,
    port: Annotated[int | None, typer.Option(help="port to serve on (default: GPUC_PORT or 8080)")] = None,
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    empty: Annotated[bool, typer.Option("--empty", help="no demo institution, project or award")] = False,
    policy: Annotated[str, typer.Option(envvar="GPUC_POLICY", help="scheduling policy")] = DEFAULT_POLICY,
    backend: BackendOption = None,
    cluster: ClusterOption = None,
    slurm_config: SlurmConfigOption = None,
    token_expires_days: Annotated[
        int | None,
        typer.Option(min=1, help="days until a newly issued admin token expires (default: never)"),
    ] = None,
) -> None:
    """Start the commons on this machine: database, API, scheduler and backend (local processes,
    or Slurm with --backend slurm). The admin token stored by the last start is kept while valid."""
    import uvicorn

    from gpucommons.service.app import create_app
    from gpucommons.service.bootstrap import bootstrap, check_backend_cluster
    from gpucommons.service.lifecycle import start_lifecycle_in_background
    from gpucommons.service.scheduler import start_in_background

    settings = settings_from_options(
        home=home, port=port, host=host, backend=backend, cluster=cluster, slurm_config=slurm_config
    )
    check_backend_cluster(settings)
    admin = bootstrap(settings, empty, token_expires_days)
    url = f"http://{settings.host}:{settings.port}"
    save_credentials(settings.home, Credentials(url=url, token=admin.token, user=admin.user))
    app = create_app(settings, migrate=False)
    stop = start_in_background(app, settings, policy)
    stop_lifecycle = start_lifecycle_in_background(app)
    out.print(f"gpucommons is up at {url} (backend {settings.backend}, cluster {settings.cluster})")
    out.print(f"admin token{' (kept from the last start)' if admin.reused else ''}: {admin.token}")
    out.print(f"credentials written to {settings.credentials_path}; try: gpuc submit --gpus 2 -- nvidia-smi")
    out.print(f"dashboard: {url}/ui (sign in with a token)")
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    finally:
        stop.set()
        stop_lifecycle.set()


def scheduler(
    policy: Annotated[str, typer.Option(envvar="GPUC_POLICY", help="scheduling policy")] = DEFAULT_POLICY,
    once: Annotated[bool, typer.Option("--once", help="run one step and exit")] = False,
    backend: BackendOption = None,
    cluster: ClusterOption = None,
    slurm_config: SlurmConfigOption = None,
) -> None:
    """Run the scheduler loop alone (when the server runs with its own loop disabled, or elsewhere)."""
    from gpucommons.service.bootstrap import check_backend_cluster
    from gpucommons.service.scheduler import build_engine
    from gpucommons.store.base import upgrade

    settings = settings_from_options(backend=backend, cluster=cluster, slurm_config=slurm_config)
    check_backend_cluster(settings)
    upgrade(settings.database_url)
    engine = build_engine(settings, policy)
    if once:
        report = engine.step()
        out.print(f"lease held: {report.held_lease}; events {report.events}; started {report.started}")
        return
    stop = threading.Event()
    out.print(f"scheduler running on {settings.database_url} every {settings.scheduler_interval_s:g} s")
    try:
        engine.run(stop, settings.scheduler_interval_s)
    except KeyboardInterrupt:
        engine.shutdown()


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("scheduler")(scheduler)
