#!/usr/bin/env bash
# bench/backends.sh - the same `ehr serve` on SQLite and on PostgreSQL, in
# the same run: requests per second (and p50/p99 latency) for
#
#   create   POST /fhir/Patient (bench/patient.json)
#   read     GET /fhir/Patient/ID
#   search   GET /fhir/Patient?family=...&birthdate=ge...   (index semi-joins)
#   compart  GET /fhir/Observation?patient=ID               (compartment; stands
#            in for Patient/$everything until the server has it)
#   everything GET /fhir/Patient/ID/$everything             (when answered 200)
#
# at 1 and 16 connections on SQLite and on PostgreSQL, and 16 connections
# over two `ehr serve` processes on the one PostgreSQL database (8 each,
# two wrk at once; req/s summed). PostgreSQL runs in a throwaway cluster
# (tests/pg/cluster.sh) with fsync on, on a Unix socket: both backends
# make every acknowledged write durable.
#
# The table (with the PostgreSQL/SQLite ratio) is printed and appended,
# dated, to bench/RESULTS.md. Builds nothing: `make build` first.
#
# usage: bench/backends.sh [--no-record] [--duration 5s]
# env: BUILD (build), DURATION (5s), PORT_BASE (18180), WRK_THREADS (2)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
DURATION=${DURATION:-5s}
PORT_BASE=${PORT_BASE:-18180}
BODY=$ROOT/bench/patient.json
RECORD=1
while [ $# -gt 0 ]; do
    case $1 in
    --no-record) RECORD=0 ;;
    --duration) DURATION=$2; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "backends.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "backends.sh: FAIL: $*" >&2; exit 1; }
note() { echo "backends.sh: $*" >&2; }
command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
EHR=$BUILD/ehr
[ -x "$EHR" ] || die "$EHR missing: run 'make build' first"

NPROC=$(nproc)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
CPU=$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*:[[:space:]]*//' || true)
WRK_THREADS=${WRK_THREADS:-2}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ehr-bench-backends.XXXXXX")
PIDS=()
PGDIR=""
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -z "$PGDIR" ] || tests/pg/cluster.sh stop "$PGDIR" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# start NAME PORT STORE-ARGS...: ehr serve in the background, ready when
# GET /fhir/metadata answers 200
start() {
    local name=$1 port=$2
    shift 2
    "$EHR" serve --port "$port" "$@" >"$TMP/$name.log" 2>&1 &
    PIDS+=("$!")
    local i code=""
    for i in $(seq 300); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/fhir/metadata" || true)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    cat "$TMP/$name.log" >&2
    die "$name did not start"
}

# token STORE-ARGS...: a user 'bench' and a token for it, on that store
token() {
    "$EHR" user add "$@" --username bench --password "Secret-$$-$RANDOM" --role admin \
        >"$TMP/user.log" 2>&1 || { cat "$TMP/user.log" >&2; die "ehr user add failed"; }
    "$EHR" token "$@" --user bench --scope 'user/*.cruds' 2>"$TMP/token.log" | tail -n1
}

PGBASE=$(PG_FSYNC=on tests/pg/cluster.sh start) || die "no PostgreSQL cluster"
PGDIR=$(sed 's/^host=\([^ ]*\).*/\1/' <<<"$PGBASE")
psql -X -q -d "$PGBASE dbname=postgres" -c 'CREATE DATABASE bench' >/dev/null
PG="$PGBASE dbname=bench"

declare -A PORT TOKEN
PORT[sqlite]=$PORT_BASE PORT[pg]=$((PORT_BASE + 1)) PORT[pg2]=$((PORT_BASE + 2))
TOKEN[sqlite]=$(token --db "$TMP/ehr.db")
TOKEN[pg]=$(token --postgres "$PG")
TOKEN[pg2]=${TOKEN[pg]}
start sqlite "${PORT[sqlite]}" --db "$TMP/ehr.db"
start pg "${PORT[pg]}" --postgres "$PG"
start pg2 "${PORT[pg2]}" --postgres "$PG"

# the same data on both: 300 patients, each with 5 observations
seed() {
    local t=$1 port=${PORT[$1]} i k pid
    for i in $(seq 300); do
        pid=$(curl -s -H "Authorization: Bearer ${TOKEN[$t]}" -H 'Content-Type: application/fhir+json' \
            --data-binary "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Fam$((i % 50))\",\"given\":[\"G$i\"]}],\"birthDate\":\"19$((50 + i % 50))-01-01\",\"gender\":\"female\"}" \
            "http://127.0.0.1:$port/fhir/Patient" | grep -o '"id":"[^"]*"' | head -n1 | cut -d'"' -f4)
        for k in 1 2 3 4 5; do
            curl -s -o /dev/null -H "Authorization: Bearer ${TOKEN[$t]}" -H 'Content-Type: application/fhir+json' \
                --data-binary "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}]},\"subject\":{\"reference\":\"Patient/$pid\"},\"valueQuantity\":{\"value\":$((60 + k)),\"unit\":\"/min\"}}" \
                "http://127.0.0.1:$port/fhir/Observation"
        done
    done
    echo "$pid"
}
note "seeding 300 patients and 1500 observations on each backend ..."
PID_sqlite=$(seed sqlite)
PID_pg=$(seed pg)
ID_FOR() { [ "$1" = sqlite ] && echo "$PID_sqlite" || echo "$PID_pg"; }

path_for() {
    local op=$1 id
    id=$(ID_FOR "$2")
    case $op in
    create) echo /fhir/Patient ;;
    read) echo "/fhir/Patient/$id" ;;
    search) echo "/fhir/Patient?family=Fam7&birthdate=ge1960-01-01" ;;
    compart) echo "/fhir/Observation?patient=$id" ;;
    everything) echo "/fhir/Patient/$id/\$everything" ;;
    esac
}

OPS=(create read search compart)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${TOKEN[sqlite]}" \
    "http://127.0.0.1:${PORT[sqlite]}$(path_for everything sqlite)")
[ "$code" = 200 ] && OPS+=(everything) || note "no \$everything yet (answered $code): not measured"

declare -A RPS P50 P99 ERR
# run KEY TARGET OP CONNS: one wrk
run() {
    local key=$1 t=$2 op=$3 conns=$4 threads=1 script=report.lua
    [ "$conns" -gt 1 ] && threads=$WRK_THREADS
    [ "$op" = create ] && script=create.lua
    EHR_BENCH_BODY=$BODY wrk -t"$threads" -c"$conns" -d"$DURATION" --latency \
        -s "$ROOT/bench/wrk/$script" -H "Authorization: Bearer ${TOKEN[$t]}" \
        "http://127.0.0.1:${PORT[$t]}$(path_for "$op" "$t")" >"$TMP/$key.out" 2>&1 || true
}
field() { grep '^BENCH ' "$1" | sed "s/.* $2=\([^ ]*\).*/\1/"; }
record() {
    local key=$1
    RPS[$key]=$(field "$TMP/$key.out" rps)
    P50[$key]=$(field "$TMP/$key.out" p50_us)
    P99[$key]=$(field "$TMP/$key.out" p99_us)
    ERR[$key]=$(($(field "$TMP/$key.out" errors) + $(field "$TMP/$key.out" non2xx)))
}

for op in "${OPS[@]}"; do
    for c in 1 16; do
        for t in sqlite pg; do
            note "$t $op, $c connection(s), $DURATION ..."
            run "$t-$op-$c" "$t" "$op" "$c"
            record "$t-$op-$c"
        done
    done
    note "two PostgreSQL servers, $op, 8+8 connections ..."
    run "pgA-$op" pg "$op" 8 &
    a=$!
    run "pgB-$op" pg2 "$op" 8
    wait "$a"
    record "pgA-$op"
    record "pgB-$op"
    RPS[pg2-$op-16]=$(awk -v a="${RPS[pgA-$op]}" -v b="${RPS[pgB-$op]}" 'BEGIN { print a + b }')
    ERR[pg2-$op-16]=$((ERR[pgA-$op] + ERR[pgB-$op]))
    P50[pg2-$op-16]=$(( (P50[pgA-$op] + P50[pgB-$op]) / 2 ))
    P99[pg2-$op-16]=$(( P99[pgA-$op] > P99[pgB-$op] ? P99[pgA-$op] : P99[pgB-$op] ))
done

ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
{
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — SQLite vs PostgreSQL (bench/backends.sh), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +changes)"
    echo
    echo "Machine: $NPROC CPU(s), ${CPU:-unknown CPU}, shared with other work: load average" \
        "before: $LOAD_BEFORE. Release build; wrk on the same machine; $DURATION per run;" \
        "PostgreSQL $(psql -X -At -d "$PG" -c 'SHOW server_version') on a Unix socket, fsync on," \
        "shared_buffers 128MB; SQLite in WAL mode, synchronous FULL. Each backend seeded with" \
        "300 patients and 1500 observations. \"2 servers\": two ehr serve on one database," \
        "8 connections each, req/s summed. errors: socket errors and non-2xx answers."
    echo
    echo "| operation | conns | SQLite req/s | p50/p99 ms | PostgreSQL req/s | p50/p99 ms | PG/SQLite | PG, 2 servers req/s | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for op in "${OPS[@]}"; do
        for c in 1 16; do
            s=$op-$c
            two="—"
            [ "$c" = 16 ] && two=$(printf '%.0f' "${RPS[pg2-$s]}")
            errs=$((ERR[sqlite-$s] + ERR[pg-$s]))
            [ "$c" = 16 ] && errs=$((errs + ERR[pg2-$s]))
            printf '| %s | %s | %.0f | %s/%s | %.0f | %s/%s | %s | %s | %s |\n' "$op" "$c" \
                "${RPS[sqlite-$s]}" "$(ms "${P50[sqlite-$s]}")" "$(ms "${P99[sqlite-$s]}")" \
                "${RPS[pg-$s]}" "$(ms "${P50[pg-$s]}")" "$(ms "${P99[pg-$s]}")" \
                "$(awk -v a="${RPS[pg-$s]}" -v b="${RPS[sqlite-$s]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" \
                "$two" "$errs"
        done
    done
    echo
} >"$TMP/section.md"
cat "$TMP/section.md"
if [ "$RECORD" = 1 ]; then
    cat "$TMP/section.md" >>bench/RESULTS.md
    note "appended to bench/RESULTS.md"
fi
