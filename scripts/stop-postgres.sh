#!/usr/bin/env bash
# Stop the private PostgreSQL server started by start-postgres.sh DIR.
set -u
dir=${1:?usage: stop-postgres.sh DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] && [ -f "$dir/data/PG_VERSION" ] || exit 0
if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "'$bin/pg_ctl' -D '$dir/data' -m fast stop" >/dev/null 2>&1
else "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1; fi
exit 0
