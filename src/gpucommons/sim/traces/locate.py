"""Where the public traces live: ``$GPUC_TRACE_DIR``, else ``shared/data/traces`` next to the checkout."""

from __future__ import annotations

import os
from pathlib import Path

from gpucommons.errors import TraceError


def trace_dir() -> Path:
    candidates = []
    if env := os.environ.get("GPUC_TRACE_DIR"):
        candidates.append(Path(env))
    for base in (Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[4]):
        candidates.append(base / "shared" / "data" / "traces")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise TraceError("trace directory not found: set GPUC_TRACE_DIR to the folder holding philly-derived/")


def trace_file(*parts: str) -> Path:
    path = trace_dir().joinpath(*parts)
    if not path.is_file():
        raise TraceError(f"trace file not found: {path}")
    return path
