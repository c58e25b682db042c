"""``gpuc up`` (the whole commons on the embedded default) and ``gpuc scheduler`` (the loop alone).

``gpuc up`` migrates the SQLite database under ``GPUC_HOME``, makes sure an ``admin`` user exists and
keeps the admin token stored by the last start while the database still accepts it (else issues one,
never expiring unless ``--token-expires-days``), and, unless ``--empty``, a demo institution, project
and active award, so a newcomer can ``gpuc submit`` at once. It writes the URL and token to
``GPUC_HOME/credentials.json`` (the CLI on this machine then needs no ``gpuc login``) and serves the API
with the scheduler loop in-process.
``--backend slurm`` (or ``GPUC_BACKEND=slurm``) executes on a Slurm cluster instead of local processes;
``--cluster`` then names the file ``gpuc site import-slurm`` wrote, so gpucommons places jobs on Slurm's
own nodes, and ``--slurm-config`` (``GPUC_SLURM_CONFIG``) the backend settings written beside it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucommons.backends.slurm_cli import SlurmCli
from gpucommons.backends.slurm_inventory import verify_cluster_on_slurm
from gpucommons.backends.slurm_submit import SlurmConfig
from gpucommons.cli.credentials import Credentials, load_credentials, save_credentials
from gpucommons.clusterfile import load_cluster
from gpucommons.config import Settings
from gpucommons.errors import ConfigError
from gpucommons.service.scheduler import DEFAULT_POLICY, build_engine, slurm_settings, start_in_background
from gpucommons.store import awards as award_repo
from gpucommons.store.base import make_engine, session_factory, upgrade, utcnow
from gpucommons.store.calls import ProgramRow, create_program
from gpucommons.store.tenancy import (
    ProjectRow,
    UserRow,
    create_institution,
    create_project,
    create_token,
    create_user,
    set_membership,
    valid_token,
)

out = Console(highlight=False, soft_wrap=True)
DEMO_PROJECT = "demo"
DEMO_BUDGET_GPU_HOURS = 1_000.0
DEMO_PRICE_KRW_PER_GPU_HOUR = 2_000


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


def check_backend_cluster(settings: Settings, cli: SlurmCli | None = None) -> None:
    """On Slurm the cluster must be named, never the demo by default, and must be what Slurm has:
    each pool's nodes, GPUs, GRES type and partition (``check_cluster_on_slurm``). Both are refused
    before anything is stored, as one-line errors (exit 2). ``cli``: the Slurm client (tests script it)."""
    if settings.backend != "slurm":
        return
    if "cluster" not in settings.model_fields_set:
        raise ConfigError(
            "--backend slurm needs --cluster FILE (or GPUC_CLUSTER) describing Slurm's nodes; "
            "write it with: gpuc site import-slurm --out site.toml --backend-config slurm.toml"
        )
    config = SlurmConfig.from_settings(slurm_settings(settings))
    cli = cli or SlurmCli(config.bin_dir, config.slurm_conf, config.command_timeout_s)
    verify_cluster_on_slurm(load_cluster(settings.cluster), config, cli)


def seed_demo(session: Session, admin: UserRow, now: datetime) -> None:
    """Once: a startup (so usage shows won charged), project ``demo`` with the admin as PI, an H100
    program and an active award."""
    if session.scalar(select(ProjectRow).where(ProjectRow.name == DEMO_PROJECT)) is not None:
        return
    institution = create_institution(session, "Demo Startup", "startup", "non_capital")
    project = create_project(session, DEMO_PROJECT, institution.id)
    set_membership(session, project.id, admin.id, "pi")
    program = session.scalar(select(ProgramRow).where(ProgramRow.name == "demo-call"))
    if program is None:
        program = create_program(
            session,
            name="demo-call",
            model="H100",
            capacity_gpus=16,
            unit_gpus=8,
            duration_days=90,
            price_krw_per_gpu_hour=DEMO_PRICE_KRW_PER_GPU_HOUR,
        )
    terms = award_repo.AwardTerms(
        project_id=project.id,
        program_id=program.id,
        gpu_hours_budget=DEMO_BUDGET_GPU_HOURS,
        guaranteed_gpus=8,
    )
    award = award_repo.create_award(session, terms, now - timedelta(seconds=1))
    award_repo.activate_award(session, award.id, now)


@dataclass(frozen=True)
class AdminToken:
    """The token ``gpuc up`` hands the CLI: its owner and whether it was kept from the last start."""

    token: str
    user: str
    reused: bool


def _stored_token(home: Path) -> str | None:
    """The token in ``credentials.json``, if any; a damaged file is replaced, as before."""
    try:
        stored = load_credentials(home)
    except ConfigError:
        return None
    return stored.token if stored is not None and stored.token else None


def admin_token(
    session: Session, admin: UserRow, stored: str | None, now: datetime, expires_days: int | None = None
) -> AdminToken:
    """The stored token when the database still lets it in and its owner is an admin, so restarting
    ``gpuc up`` does not pile up valid admin tokens; otherwise a new token for ``admin``, which never
    expires unless ``expires_days`` is given."""
    if stored is not None:
        row = valid_token(session, stored, now)
        owner = session.get(UserRow, row.user_id) if row is not None else None
        if owner is not None and owner.role == "admin":
            return AdminToken(stored, owner.name, reused=True)
    expires_at = now + timedelta(days=expires_days) if expires_days else None
    _, token = create_token(session, admin.id, now, expires_at, label="gpuc up")
    return AdminToken(token, admin.name, reused=False)


def bootstrap(settings: Settings, empty: bool, token_expires_days: int | None = None) -> AdminToken:
    """Migrate, ensure the admin (and demo data); returns the admin token to store (see ``admin_token``)."""
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.home.chmod(0o700)  # it holds the database and the admin token; jobs must not enter it
    upgrade(settings.database_url)
    stored = _stored_token(settings.home)
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            now = utcnow()
            admin = session.scalar(select(UserRow).where(UserRow.name == "admin"))
            if admin is None:
                admin = create_user(session, "admin", "admin")
            token = admin_token(session, admin, stored, now, token_expires_days)
            if not empty:
                seed_demo(session, admin, now)
            session.commit()
    finally:
        engine.dispose()
    return token


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

    settings = settings_from_options(
        home=home, port=port, host=host, backend=backend, cluster=cluster, slurm_config=slurm_config
    )
    check_backend_cluster(settings)
    admin = bootstrap(settings, empty, token_expires_days)
    url = f"http://{settings.host}:{settings.port}"
    save_credentials(settings.home, Credentials(url=url, token=admin.token, user=admin.user))
    app = create_app(settings, migrate=False)
    stop = start_in_background(app, settings, policy)
    out.print(f"gpucommons is up at {url} (backend {settings.backend}, cluster {settings.cluster})")
    out.print(f"admin token{' (kept from the last start)' if admin.reused else ''}: {admin.token}")
    out.print(f"credentials written to {settings.credentials_path}; try: gpuc submit --gpus 2 -- nvidia-smi")
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    finally:
        stop.set()


def scheduler(
    policy: Annotated[str, typer.Option(envvar="GPUC_POLICY", help="scheduling policy")] = DEFAULT_POLICY,
    once: Annotated[bool, typer.Option("--once", help="run one step and exit")] = False,
    backend: BackendOption = None,
    cluster: ClusterOption = None,
    slurm_config: SlurmConfigOption = None,
) -> None:
    """Run the scheduler loop alone (when the server runs with its own loop disabled, or elsewhere)."""
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
