#!/bin/sh
# Black-box tests: each tests/api/test_*.py starts its own `ehr serve` on a
# loopback port with a temporary database (see tests/api/harness.py), once
# per storage backend: SQLite files, then PostgreSQL (a throwaway cluster
# started here by tests/pg/cluster.sh, one database per server).
#   EHR_TEST_STORES="sqlite"   run one backend only (default: "sqlite postgres")
set -eu
cd "$(dirname "$0")/api"
: "${EHR_BIN:?set EHR_BIN to the ehr binary}"
export EHR_BIN
status=0
pgdir=""
cleanup() {
    [ -z "$pgdir" ] || ../pg/cluster.sh stop "$pgdir" || true
}
trap cleanup EXIT
trap 'exit 1' INT TERM
for store in ${EHR_TEST_STORES:-sqlite postgres}; do
    export EHR_TEST_STORE="$store"
    if [ "$store" = postgres ] && [ -z "${EHR_TEST_PG:-}" ]; then
        EHR_TEST_PG=$(../pg/cluster.sh start) || { echo "run-api: no PostgreSQL cluster"; exit 1; }
        pgdir=$(echo "$EHR_TEST_PG" | sed 's/^host=\([^ ]*\).*/\1/')
        export EHR_TEST_PG
    fi
    for t in test_*.py; do
        [ -e "$t" ] || continue
        echo "== $t ($store)"
        python3 "$t" || status=1
    done
    # tests that only make sense on PostgreSQL (several servers, one database)
    if [ "$store" = postgres ]; then
        for t in ../pg/test_*.py; do
            [ -e "$t" ] || continue
            echo "== $t"
            python3 "$t" || status=1
        done
    fi
done
exit $status
