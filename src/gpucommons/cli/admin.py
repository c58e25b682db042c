"""``gpuc admin``: institutions, projects and users through the API, plus ``bootstrap``, which writes
the first admin straight into the local database (the only way into an empty server)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from gpucommons.cli import lifecycle, tokens
from gpucommons.cli.common import console, make_client, show
from gpucommons.cli.credentials import DEFAULT_URL, Credentials, save_credentials
from gpucommons.config import Settings

app = typer.Typer(no_args_is_help=True, help="Run the center: tenants, users, tokens, the award lifecycle.")
institution_app = typer.Typer(no_args_is_help=True, help="Institutions.")
project_app = typer.Typer(no_args_is_help=True, help="Projects and members.")
user_app = typer.Typer(no_args_is_help=True, help="Users and API tokens.")
app.add_typer(institution_app, name="institution")
app.add_typer(project_app, name="project")
app.add_typer(user_app, name="user")
app.add_typer(lifecycle.app, name="lifecycle")
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


@app.command("bootstrap")
def bootstrap(
    name: Annotated[str, typer.Option(help="the first admin's user name")] = "admin",
    home: Annotated[Path | None, typer.Option(help="state directory (default GPUC_HOME)")] = None,
    url: Annotated[str, typer.Option(help="server URL to store with the token")] = DEFAULT_URL,
    token_expires_days: Annotated[
        int | None, typer.Option(min=1, help="days until the admin token expires (default: never)")
    ] = None,
) -> None:
    """Create the first admin in the local database and store its token as your credentials."""
    from gpucommons.store.base import make_engine, session_factory, upgrade, utcnow
    from gpucommons.store.tenancy import bootstrap_admin

    settings = Settings(home=home) if home is not None else Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            now = utcnow()
            expires_at = now + timedelta(days=token_expires_days) if token_expires_days else None
            user, token = bootstrap_admin(session, name, now, expires_at)
            session.commit()
    finally:
        engine.dispose()
    path = save_credentials(settings.home, Credentials(url=url, token=token, user=user.name))
    console.print(f"admin {user.name!r} created; token stored in {path}")


@institution_app.command("create")
def institution_create(
    name: str,
    kind: Annotated[str, typer.Option(help="university, research_institute, sme, startup, ...")],
    region: Annotated[str, typer.Option(help="capital or non_capital")],
    youth_startup: Annotated[bool, typer.Option(help="a youth startup (extra discount)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Register an institution."""
    row = make_client().create_institution(name, kind, region, youth_startup)
    show(row, ("id", "name", "kind", "region", "youth_startup"), as_json)


@institution_app.command("list")
def institution_list(as_json: JsonOpt = False) -> None:
    """List institutions."""
    show(make_client().list_institutions(), ("id", "name", "kind", "region", "youth_startup"), as_json)


@project_app.command("create")
def project_create(
    name: str,
    institution: Annotated[int, typer.Option(help="institution id")],
    sovereign: Annotated[bool, typer.Option(help="data must stay on sovereign sites")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a project."""
    show(
        make_client().create_project(name, institution, sovereign), ("id", "name", "institution_id"), as_json
    )


@project_app.command("list")
def project_list(as_json: JsonOpt = False) -> None:
    """List the projects you may see."""
    show(make_client().list_projects(), ("id", "name", "institution_id", "sovereign"), as_json)


@project_app.command("add-member")
def project_add_member(
    project: Annotated[int, typer.Argument(help="project id")],
    user: Annotated[int, typer.Option(help="user id")],
    role: Annotated[str, typer.Option(help="pi or member")] = "member",
) -> None:
    """Add a user to a project, or change their role (the project's PI or an admin)."""
    show(make_client().add_member(project, user, role), ("user_id", "name", "role"))


@project_app.command("remove-member")
def project_remove_member(
    project: Annotated[int, typer.Argument(help="project id")],
    user: Annotated[int, typer.Option(help="user id")],
) -> None:
    """Remove a user from a project (the project's PI or an admin)."""
    make_client().remove_member(project, user)
    console.print(f"user {user} removed from project {project}")


@user_app.command("create")
def user_create(
    name: str,
    role: Annotated[str, typer.Option(help="admin, reviewer or user")] = "user",
    email: Annotated[str | None, typer.Option(help="where notices about their projects go")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user (admin)."""
    show(make_client().create_user(name, role, email), ("id", "name", "role", "email"), as_json)


@user_app.command("set-email")
def user_set_email(
    user: Annotated[int, typer.Argument(help="user id")],
    email: Annotated[str | None, typer.Argument(help="the address; leave out to mail them nothing")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Set where a user's notices are mailed (an admin for anyone, a user for themselves)."""
    show(make_client().set_user_email(user, email), ("id", "name", "role", "email"), as_json)


@user_app.command("token")
def user_token(
    user: tokens.UserOpt = None,
    expires_days: tokens.ExpiresDaysOpt = None,
    expires_at: tokens.ExpiresAtOpt = None,
    label: tokens.LabelOpt = "",
) -> None:
    """Issue an API token (as ``gpuc token create``); it is printed once and only its hash is kept."""
    console.print(tokens.issue(user, expires_days, expires_at, label))
