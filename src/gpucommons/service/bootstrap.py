"""What ``gpuc up`` prepares before it serves: the Slurm cluster checked against Slurm, the database
migrated, an ``admin`` user with a token (the stored one while the database still accepts it), and,
unless asked for an empty commons, a demo institution, project, program and active award so a newcomer
can submit at once. Kept apart from the command line so ``gpuc --help`` and the client commands never
import the server (SQLAlchemy, the backends) to start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucommons.backends.slurm_cli import SlurmCli
from gpucommons.backends.slurm_inventory import verify_cluster_on_slurm
from gpucommons.backends.slurm_submit import SlurmConfig
from gpucommons.cli.credentials import load_credentials
from gpucommons.clusterfile import load_cluster
from gpucommons.config import Settings
from gpucommons.errors import ConfigError
from gpucommons.service.scheduler import slurm_settings
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

DEMO_PROJECT = "demo"
DEMO_BUDGET_GPU_HOURS = 1_000.0
DEMO_PRICE_KRW_PER_GPU_HOUR = 2_000


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
