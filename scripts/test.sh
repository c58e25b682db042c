#!/usr/bin/env bash
# The full test run, as CI runs it: lint, types, then every test including slow and service-backed
# ones. It starts the services those tests need — a private PostgreSQL server and the Slurm test
# cluster from ../shared/slurm — and stops them on exit; the dashboard's browser tests get Debian's
# chromium, installed when missing. Where a service cannot be started (not root, no ../shared), its
# tests skip with a reason, except under CI=true: there the run stops with an error, and any test
# that still skips fails it (tests/conftest.py). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/ruff" check src tests benchmarks
"$VENV/bin/ruff" format --check src tests benchmarks
"$VENV/bin/mypy"

work=$(mktemp -d /tmp/gpuc-test.XXXXXX)
chmod 755 "$work"
slurm_dir=""
cleanup() {
  [ -n "$slurm_dir" ] && ../shared/slurm/stop-test-cluster.sh "$slurm_dir" >/dev/null 2>&1 || true
  scripts/stop-postgres.sh "$work/pg" || true
}
trap cleanup EXIT

if [ -z "${GPUC_TEST_POSTGRES_URL:-}" ]; then
  if url=$(scripts/start-postgres.sh "$work/pg" 2>"$work/pg-start.log"); then
    export GPUC_TEST_POSTGRES_URL=$url
  else
    echo "PostgreSQL not started; its tests will skip:" >&2; tail -n 3 "$work/pg-start.log" >&2
    [ "${CI:-}" = true ] && { echo "CI=true requires PostgreSQL" >&2; exit 1; }
  fi
fi
# The dashboard's browser tests drive Debian's chromium: installed with apt when missing, as root.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ]; then
  echo "installing chromium..." >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$work/chromium.log" 2>&1 \
    || { echo "chromium not installed; the browser tests will skip:" >&2; tail -n 3 "$work/chromium.log" >&2; }
fi
[ "${CI:-}" = true ] && [ ! -x /usr/bin/chromium ] && { echo "CI=true requires chromium (/usr/bin/chromium)" >&2; exit 1; }
if [ -z "${SLURM_CONF:-}" ] && [ "${CI:-}" = true ] && ! { [ -x ../shared/slurm/start-test-cluster.sh ] && [ "$(id -u)" = 0 ]; }; then
  echo "CI=true requires the Slurm test cluster: ../shared/slurm/start-test-cluster.sh, run as root" >&2
  exit 1
fi
if [ -z "${SLURM_CONF:-}" ] && [ -x ../shared/slurm/start-test-cluster.sh ] && [ "$(id -u)" = 0 ]; then
  slurm_dir="$work/slurm"
  if exports=$(../shared/slurm/start-test-cluster.sh "$slurm_dir" 2>"$work/slurm-start.log"); then
    eval "$exports"
  else
    echo "Slurm test cluster not started; its tests will skip:" >&2; tail -n 5 "$work/slurm-start.log" >&2
    slurm_dir=""
    [ "${CI:-}" = true ] && { echo "CI=true requires the Slurm test cluster" >&2; exit 1; }
  fi
fi
"$VENV/bin/pytest" -q -m "" "$@"
