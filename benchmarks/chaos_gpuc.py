"""``python benchmarks/chaos_gpuc.py ARGS``: the ``gpuc`` command of this checkout, with nodes that an
operator can take out of service while it runs.

The chaos harness (``benchmarks/chaos.py``) needs to drain nodes mid-job, but the commons has no
drain or cordon command for the local backend yet: ``LocalBackend`` only takes a fixed ``down_nodes``
list at construction. This launcher runs the real CLI (``gpucommons.cli.app.main``) after one change:
the local backend's ``unavailable_nodes()`` reads the node names listed in the file named by
``GPUC_CHAOS_DRAIN_FILE`` (one per line; a missing file means none), so the harness drains a node by
writing that file and the engine sees it at its next cycle exactly as it would see a Slurm drain. Every
other line of the server and scheduler is the shipped code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from gpucommons.config import Settings
from gpucommons.engine.ports import Backend

DRAIN_FILE_ENV = "GPUC_CHAOS_DRAIN_FILE"


def drained_nodes(path: Path) -> set[str]:
    """The node names in the drain file (``set()`` when it does not exist or cannot be read)."""
    try:
        text = path.read_text()
    except OSError:
        return set()
    return {line.strip() for line in text.splitlines() if line.strip()}


def write_drained(path: Path, nodes: set[str]) -> None:
    """Replace the drain file atomically, so a scheduler never reads half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{n}\n" for n in sorted(nodes)))
    os.replace(tmp, path)


def drainable(factory: Callable[[Settings], Backend], path: Path) -> Callable[[Settings], Backend]:
    """A backend factory whose backends report the drain file's nodes (and their own) unavailable."""

    def build(settings: Settings) -> Backend:
        backend = factory(settings)
        own = backend.unavailable_nodes

        def unavailable_nodes() -> set[str]:
            return own() | drained_nodes(path)

        setattr(backend, "unavailable_nodes", unavailable_nodes)  # noqa: B010 - an instance override
        return backend

    return build


def main() -> None:
    from gpucommons.cli.app import main as gpuc_main
    from gpucommons.service import scheduler

    drain_file = os.environ.get(DRAIN_FILE_ENV)
    if drain_file:
        scheduler.BACKENDS["local"] = drainable(scheduler.BACKENDS["local"], Path(drain_file))
    gpuc_main()


if __name__ == "__main__":
    main()
