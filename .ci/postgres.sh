#!/usr/bin/env bash
# Starts a throw-away PostgreSQL server on loopback for the store's contract tests and
# prints the URL. Installs Debian's server package when the machine lacks it.
set -euo pipefail
if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
port=${RANKWRIGHT_PG_PORT:-54329}
# Another server (an earlier run, a benchmark) may hold the port: take the next free one.
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
data=$(mktemp -d /tmp/rankwright-pg.XXXXXX)
chown postgres "$data"
su postgres -s /bin/sh -c "$bin/initdb -D $data -A trust -U postgres >/dev/null"
su postgres -s /bin/sh -c "$bin/pg_ctl -D $data -l $data/server.log -w \
  -o '-k $data -p $port -c listen_addresses=127.0.0.1 -c fsync=off' start >/dev/null"
echo "$data" > "${RANKWRIGHT_PG_DATADIR_FILE:-/tmp/rankwright-pg.datadir}"
echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
