"""The pure core stays pure: ``domain`` and ``policy`` import no database, web, subprocess or cluster
client, never read the wall clock or the global ``random``, and never reach into the simulator or the
layers above them; the engine sees only its ports; and the command line starts without the server."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gpucommons"
CORE = ("domain", "policy")

FORBIDDEN_MODULES = {
    "sqlalchemy", "alembic", "psycopg", "fastapi", "starlette", "uvicorn", "httpx", "requests", "socket",
    "subprocess", "random", "time", "secrets", "threading", "multiprocessing",
}  # fmt: skip
FORBIDDEN_LAYERS = {
    "domain": ("gpucommons.policy", "gpucommons.engine", "gpucommons.sim", "gpucommons.store",
               "gpucommons.service", "gpucommons.backends", "gpucommons.cli", "gpucommons.planner",
               "gpucommons.metering", "gpucommons.config", "gpucommons.clusterfile"),
    "policy": ("gpucommons.engine", "gpucommons.sim", "gpucommons.store", "gpucommons.service",
               "gpucommons.backends", "gpucommons.cli", "gpucommons.planner", "gpucommons.config"),
}  # fmt: skip
WALL_CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}


def core_modules() -> list[Path]:
    return sorted(p for layer in CORE for p in (SRC / layer).rglob("*.py"))


def imported_names(tree: ast.AST, module: str) -> list[str]:
    """Absolute names of every import in the tree (relative imports resolved against ``module``)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                names.append(".".join([*base, node.module] if node.module else base))
            else:
                names.append(node.module or "")
    return names


def module_name(path: Path) -> str:
    """Dotted name of the module; a package's ``__init__`` keeps that suffix so relative imports resolve
    against the package itself."""
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts)


def test_core_modules_are_found() -> None:
    found = {module_name(p) for p in core_modules()}
    assert {"gpucommons.policy.cycle", "gpucommons.policy.__init__", "gpucommons.domain.job"} <= found


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_core_module_imports(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    module = module_name(path)
    layer = module.split(".")[1]
    assert layer in FORBIDDEN_LAYERS
    for name in imported_names(tree, module):
        top = name.split(".")[0]
        assert top not in FORBIDDEN_MODULES, f"{module} imports {name}"
        for banned in FORBIDDEN_LAYERS[layer]:
            assert name != banned and not name.startswith(banned + "."), f"{module} imports {name}"
        if layer == "domain" and top == "gpucommons":
            assert name.startswith(("gpucommons.domain", "gpucommons.errors")), f"{module} imports {name}"


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_core_module_never_reads_the_wall_clock(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert (node.value.id, node.attr) not in WALL_CLOCK_CALLS, f"{path.name}:{node.lineno}"


ENGINE_FORBIDDEN = ("sqlalchemy", "alembic", "psycopg", "fastapi", "starlette", "uvicorn", "httpx")
ENGINE_FORBIDDEN_LAYERS = ("gpucommons.store", "gpucommons.service", "gpucommons.backends",
                           "gpucommons.cli", "gpucommons.sim")  # fmt: skip


def engine_modules() -> list[Path]:
    return sorted((SRC / "engine").rglob("*.py"))


@pytest.mark.parametrize("path", engine_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_engine_sees_only_its_ports(path: Path) -> None:
    """The engine reaches the database and the backends only through ``engine/ports.py``: the store
    and the backends implement the ports, the engine never imports them (nor an ORM or web client)."""
    module = module_name(path)
    for name in imported_names(ast.parse(path.read_text(), filename=str(path)), module):
        assert name.split(".")[0] not in ENGINE_FORBIDDEN, f"{module} imports {name}"
        for banned in ENGINE_FORBIDDEN_LAYERS:
            assert name != banned and not name.startswith(banned + "."), f"{module} imports {name}"


def test_importing_the_core_loads_no_simulator_or_service() -> None:
    code = (
        "import sys, gpucommons.policy, gpucommons.policy.registry, gpucommons.domain.job\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('gpucommons.sim', 'gpucommons.engine',"
        " 'gpucommons.store', 'gpucommons.service', 'gpucommons.backends', 'gpucommons.cli'))"
        " or m.split('.')[0] in ('sqlalchemy', 'fastapi', 'httpx', 'subprocess'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def test_checker_sees_a_forbidden_import() -> None:
    tree = ast.parse("import random\nfrom ..sim import runner\nfrom time import time\nfrom . import cycle\n")
    names = imported_names(tree, "gpucommons.policy.__init__")
    assert names == ["random", "gpucommons.sim", "time", "gpucommons.policy"]


def test_the_command_line_starts_without_the_server_or_the_simulator() -> None:
    """``gpuc --help`` and the client commands (submit, queue, why, logs) import neither the web
    framework, the ORM, migrations nor NumPy: each command imports its machinery when it runs."""
    probe = (
        "import sys, gpucommons.cli.app; "
        "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'sqlalchemy', 'alembic', 'numpy') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
