"""Entry point of ``gpuc``. Every ``GpucError`` and every usage error (an unknown command, a missing
or malformed option) becomes one line on stderr and exit code 2, so a script or a person reads the
reason without a box or a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

# Typer carries its own copy of Click's exceptions (pinned in pyproject.toml); they are what it raises.
from typer._click import exceptions as click

from gpucommons.cli import (
    admin,
    awards,
    jobs,
    nodes,
    notices,
    plan,
    programs,
    proposals,
    reports,
    reservations,
    server,
    sim,
    site,
    targets,
    tokens,
    up,
)
from gpucommons.errors import GpucError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="gpucommons: a shared national pool of AI accelerators.",
)


@app.callback()
def _root() -> None:
    """gpucommons: a shared national pool of AI accelerators."""


app.command("sim")(sim.sim_command)
app.add_typer(site.app, name="site")
app.command("server")(server.server_command)
app.command("login")(server.login_command)
app.add_typer(programs.app, name="program")
app.add_typer(proposals.app, name="proposal")
app.add_typer(awards.app, name="award")
app.add_typer(admin.app, name="admin")
app.add_typer(tokens.app, name="token")
app.add_typer(nodes.app, name="node")
app.add_typer(reports.app, name="report")
app.add_typer(plan.app, name="plan")
app.add_typer(notices.app, name="notice")
app.add_typer(targets.app, name="target")
app.add_typer(reservations.app, name="reserve")
jobs.register(app)
up.register(app)


def _fail(message: str) -> NoReturn:
    # A message may quote user input holding brackets: print it as is, not as Rich markup.
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(2)


def main() -> None:
    try:
        result = app(standalone_mode=False)
    except click.NoArgsIsHelpError as exc:  # ``gpuc GROUP`` alone: its help, as asked
        print(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        sys.exit(2)
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _fail(" ".join(exc.format_message().split()) + where)
    except click.ClickException as exc:
        _fail(" ".join(exc.format_message().split()))
    except typer.Abort:
        sys.exit(1)
    except GpucError as exc:
        _fail(str(exc))
    sys.exit(result if isinstance(result, int) else 0)
