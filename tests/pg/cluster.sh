#!/bin/sh
# cluster.sh - a throwaway PostgreSQL cluster for the tests and benchmarks.
#
#   tests/pg/cluster.sh start [DIR]   initdb into DIR (default: a new temporary
#                                     folder), start it on a Unix socket in DIR;
#                                     prints the base conninfo on stdout:
#                                     "host=DIR port=5432 user=ehr"
#   tests/pg/cluster.sh stop DIR      stop it (fast) and remove DIR
#   tests/pg/cluster.sh restart DIR   stop (fast) and start again, same data
#   tests/pg/cluster.sh down DIR      stop (fast), keep the data
#   tests/pg/cluster.sh up DIR        start again after down
#
# Nothing listens on TCP: the socket lives in DIR, so any number of clusters
# can run at once. PostgreSQL refuses to run as root: as root, the cluster
# runs as the system user ehr-pgtest (created here when missing). Installs
# PostgreSQL from Debian when it is missing (scripts/install-deps.sh).
# PG_FSYNC=on keeps fsync (benchmarks); tests run with fsync off.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-}
dir=${2:-}

bindir=""
for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && bindir=$d
done
if [ -z "$bindir" ]; then
    EHR_EXTRA_PKGS="postgresql postgresql-contrib" "$here/../../scripts/install-deps.sh" >&2
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && bindir=$d
    done
fi
[ -n "$bindir" ] || { echo "cluster.sh: PostgreSQL is not installed" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u ehr-pgtest -- "$@"
    else
        "$@"
    fi
}

start() {
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start \
        -o "-k $dir -c listen_addresses='' -p 5432" >/dev/null
}

case "$cmd" in
start)
    if [ "$(id -u)" -eq 0 ] && ! id ehr-pgtest >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin ehr-pgtest
    fi
    [ -n "$dir" ] || dir=$(mktemp -d "${TMPDIR:-/tmp}/ehr-pg-XXXXXX")
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown ehr-pgtest "$dir"
    chmod 0755 "$dir"
    as_owner "$bindir/initdb" -D "$dir/data" -U ehr --auth=trust -E UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    {
        echo "max_connections = 400"
        echo "shared_buffers = 128MB"
        if [ "${PG_FSYNC:-off}" = on ]; then
            echo "fsync = on"
        else
            echo "fsync = off"
            echo "full_page_writes = off"
        fi
        echo "unix_socket_permissions = 0777"
    } >>"$dir/data/postgresql.conf"
    start || { cat "$dir/log" >&2; exit 1; }
    echo "host=$dir port=5432 user=ehr"
    ;;
stop)
    [ -n "$dir" ] && [ -d "$dir/data" ] || { echo "cluster.sh: no cluster in '$dir'" >&2; exit 1; }
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
restart)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    start
    ;;
down)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
up)
    start
    ;;
*)
    echo "usage: cluster.sh start [DIR] | stop DIR | restart DIR | down DIR | up DIR" >&2
    exit 2
    ;;
esac
