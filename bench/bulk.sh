#!/usr/bin/env bash
# bench/bulk.sh - bulk workloads, each beside its baseline in the same run:
#
#   ingest   `ehr import --db` of Synthea patient Bundles (resources/s), and
#            through a running server (`ehr import --url --jobs 4`: HTTP
#            transaction Bundles from 4 clients); baseline: bench/raw_insert,
#            the same JSON rows inserted raw into SQLite (same fsync policy)
#   export   `ehr export` (resources/s)
#   $everything  GET Patient/ID/$everything for the median patient (by
#            compartment size), 1 client (wrk), p50/p99; beside it a read by
#            id of the same patient (the fastest request the server has)
#
# on a scale ladder of patients cloned from Synthea r4-2019 (bench/clone.py).
# Prints a Markdown table and appends it, dated, to bench/RESULTS.md.
#
# usage: bench/bulk.sh [--no-record]
# env:  BUILD (default build: a release build, `make build`), LADDER
#       (default "50 500"; "50 500 5000" for the full ladder), DURATION (wrk,
#       default 10s), PORT_BASE (default 18180)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
LADDER=${LADDER:-"50 500"}
DURATION=${DURATION:-10s}
PORT_BASE=${PORT_BASE:-18180}
RECORD=1
[ "${1:-}" = --no-record ] && RECORD=0
EHR=$BUILD/ehr
die() { echo "bulk.sh: FAIL: $*" >&2; exit 1; }
note() { echo "bulk.sh: $*" >&2; }
[ -x "$EHR" ] && [ -x "$BUILD/bench/raw_insert" ] || die "run 'make build' first (or set BUILD)"
command -v wrk >/dev/null || die "wrk is not installed"
command -v sqlite3 >/dev/null || die "the sqlite3 shell is not installed"
[ -d ../shared/data/synthea/r4-2019 ] || die "../shared/data/synthea/r4-2019 is absent"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ehr-bulk.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
CPU=$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*:[[:space:]]*//' || true)

# serve DB PORT: start ehr serve, wait for /fhir/metadata; pid in SERVER_PID
serve() {
    "$EHR" serve --port "$2" --db "$1" >"$TMP/serve-$2.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/fhir/metadata" || true)" = 200 ] && return 0
        sleep 0.1
    done
    cat "$TMP/serve-$2.log" >&2
    die "ehr serve did not start"
}
token() {
    "$EHR" user add --db "$1" --username bench --password "Secret-$$-$RANDOM-x" --role admin >/dev/null 2>&1 || true
    "$EHR" token --db "$1" --user bench --scope 'user/*.cruds' 2>/dev/null | tail -n1
}
rate_of() { sed -n 's/.*(\([0-9]*\) resources\/s).*/\1/p' | head -n1; }
cpu_rate_of() { sed -n 's/.*(\([0-9]*\) resources per CPU-second).*/\1/p' | head -n1; }
field() { sed "s/.* $2=\([^ ]*\).*/\1/" <<<"$1"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }

ROWS=()
for N in $LADDER; do
    note "$N patients: cloning"
    python3 bench/clone.py "$N" "$TMP/data-$N" >&2
    note "$N patients: ehr import --db"
    out=$("$EHR" import --db "$TMP/$N.db" --quiet "$TMP/data-$N") || die "import failed: $out"
    RES=$(sed -n 's/^ehr import: \([0-9]*\) resources.*/\1/p' <<<"$out")
    IMPORT=$(rate_of <<<"$out") IMPORT_CPU=$(cpu_rate_of <<<"$out")
    note "$N patients: ehr export"
    out=$("$EHR" export --db "$TMP/$N.db" --quiet --out "$TMP/exp-$N") || die "export failed"
    EXPORT=$(rate_of <<<"$out") EXPORT_CPU=$(cpu_rate_of <<<"$out")
    note "$N patients: raw SQLite insert of the same rows"
    out=$("$BUILD/bench/raw_insert" "$TMP/raw-$N.db" "$TMP/exp-$N" 200)
    RAW=$(field "$out" rate) RAW_CPU=$(field "$out" cpu_rate)
    rm -rf "$TMP/exp-$N" "$TMP/raw-$N.db"*
    # the median patient by compartment size
    PID=$(sqlite3 "$TMP/$N.db" "SELECT patient FROM (SELECT patient, count(*) n FROM compartment GROUP BY patient ORDER BY n, patient) LIMIT 1 OFFSET (SELECT count(DISTINCT patient) / 2 FROM compartment)")
    PN=$(sqlite3 "$TMP/$N.db" "SELECT count(*) FROM compartment WHERE patient = '$PID'")
    TOK=$(token "$TMP/$N.db")
    PORT=$((PORT_BASE))
    serve "$TMP/$N.db" "$PORT"
    note "$N patients: \$everything of Patient/$PID ($PN resources), 1 client, $DURATION"
    out=$(wrk -t1 -c1 -d"$DURATION" --latency -s bench/wrk/report.lua -H "Authorization: Bearer $TOK" \
        "http://127.0.0.1:$PORT/fhir/Patient/$PID/\$everything?_count=1000" | grep '^BENCH')
    EV50=$(field "$out" p50_us) EV99=$(field "$out" p99_us) EVRPS=$(field "$out" rps)
    out=$(wrk -t1 -c1 -d"$DURATION" --latency -s bench/wrk/report.lua -H "Authorization: Bearer $TOK" \
        "http://127.0.0.1:$PORT/fhir/Patient/$PID" | grep '^BENCH')
    RD50=$(field "$out" p50_us) RD99=$(field "$out" p99_us)
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    note "$N patients: ehr import --url --jobs 4 (HTTP transaction Bundles)"
    rm -f "$TMP/http-$N.db"*
    TOK=$(token "$TMP/http-$N.db")
    serve "$TMP/http-$N.db" $((PORT + 1))
    out=$("$EHR" import --url "http://127.0.0.1:$((PORT + 1))/fhir" --token "$TOK" --jobs 4 --quiet \
        "$TMP/data-$N") || die "HTTP import failed: $out"
    HTTP=$(rate_of <<<"$out")
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$TMP/data-$N" "$TMP/http-$N.db"* "$TMP/$N.db"*
    ROWS+=("| $N | $RES | $IMPORT ($IMPORT_CPU/CPU-s) | $HTTP | $RAW ($RAW_CPU/CPU-s) | $EXPORT ($EXPORT_CPU/CPU-s) | $PN | $(ms "$EV50") | $(ms "$EV99") | $EVRPS | $(ms "$RD50") | $(ms "$RD99") |")
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
TABLE=$(
    echo "| patients | resources | ingest \`ehr import --db\` res/s (per CPU-second) | ingest HTTP, 4 clients res/s | baseline: raw SQLite insert rows/s (per CPU-second) | \`ehr export\` res/s (per CPU-second) | median patient's resources | \$everything p50 ms | p99 ms | req/s | read by id p50 ms | p99 ms |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
)
echo "$TABLE"
if [ "$RECORD" = 1 ]; then
    {
        echo
        echo "## $(date -u +%F) — bulk: ingest, export, \$everything (\`bench/bulk.sh\`)"
        echo
        echo "$(nproc) CPUs ($CPU), shared with other work: load average $LOAD_BEFORE before, $LOAD_AFTER after."
        echo "Release build; SQLite WAL, synchronous=FULL for ehr and for the baseline alike; wrk on the same machine."
        echo
        echo "$TABLE"
    } >>bench/RESULTS.md
    note "appended to bench/RESULTS.md"
fi
