#!/usr/bin/env bash
# Start a private PostgreSQL server for the tests (installing it with apt when missing, as root) and
# print its SQLAlchemy URL on stdout. Usage: start-postgres.sh DIR [PORT]. Stop: stop-postgres.sh DIR.
set -euo pipefail
dir=${1:?usage: start-postgres.sh DIR [PORT]}
port=${2:-55432}
pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(pgbin)" ]; then
  [ "$(id -u)" = 0 ] || { echo "PostgreSQL is not installed and this is not root" >&2; exit 1; }
  echo "installing PostgreSQL..." >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
bin=$(pgbin)
mkdir -p "$dir"
run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$dir"
if [ ! -f "$dir/data/PG_VERSION" ]; then
  run "'$bin/initdb' -D '$dir/data' -A trust -U postgres" >/dev/null
fi
if ! run "'$bin/pg_ctl' -D '$dir/data' status" >/dev/null 2>&1; then
  run "'$bin/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" start" >&2
fi
run "'$bin/psql' -h 127.0.0.1 -p $port -U postgres -tAc \"SELECT 1 FROM pg_database WHERE datname='gpuc_test'\"" | grep -q 1 \
  || run "'$bin/createdb' -h 127.0.0.1 -p $port -U postgres gpuc_test"
echo "postgresql+psycopg://postgres@127.0.0.1:$port/gpuc_test"
