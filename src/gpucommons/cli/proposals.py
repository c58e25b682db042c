"""``gpuc proposal``: submit (a project's PI), list and show, and review (reviewers)."""

from __future__ import annotations

from typing import Annotated

import typer

from gpucommons.cli.common import make_client, show

app = typer.Typer(no_args_is_help=True, help="Proposals to programs, and their reviews.")
COLUMNS = ("id", "program_id", "project_id", "requested_gpus", "status", "submitted_at")
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


@app.command("submit")
def submit(
    program: Annotated[int, typer.Option(help="program id")],
    project: Annotated[int, typer.Option(help="project id (you must be its PI)")],
    gpus: Annotated[int, typer.Option(help="GPUs requested, a multiple of the program unit")],
    justification: Annotated[str, typer.Option(help="why the project needs them")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Submit a proposal for a project."""
    show(make_client().submit_proposal(program, project, gpus, justification), COLUMNS, as_json)


@app.command("list")
def list_(
    program: Annotated[int | None, typer.Option(help="only this program")] = None, as_json: JsonOpt = False
) -> None:
    """List the proposals you may see (your projects'; reviewers and admins: all)."""
    show(make_client().list_proposals(program), COLUMNS, as_json)


@app.command("show")
def show_(proposal_id: int, as_json: JsonOpt = False) -> None:
    """Show one proposal."""
    show(make_client().get_proposal(proposal_id), (*COLUMNS, "justification"), as_json)


@app.command("review")
def review(
    proposal_id: int,
    score: Annotated[int, typer.Option(help="0-100")],
    comment: Annotated[str, typer.Option(help="for the committee")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Score a proposal (reviewers); scoring again replaces your earlier score."""
    row = make_client().review_proposal(proposal_id, score, comment)
    show(row, ("id", "proposal_id", "reviewer_id", "score", "comment"), as_json)
