"""Entry point of ``gpuc``. Every ``GpucError`` becomes a one-line message and exit code 2; usage
errors are Typer's own (exit code 2)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from gpucommons.cli import admin, awards, jobs, programs, proposals, server, sim, site, up
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
jobs.register(app)
up.register(app)


def main() -> None:
    try:
        app()
    except GpucError as exc:
        message = escape(str(exc))  # a message may quote user input holding brackets: print it as is
        Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(2)
