#!/usr/bin/env bash
# bench/hl7v2.sh - HL7 v2 lab results in: ORU^R01 messages per second over
# MLLP (each stored raw, mapped to a DiagnosticReport and 5 Observations,
# applied as one transaction, acknowledged) with 1 and 4 connections,
# compared in the same run, on the same server and database, with the plain
# FHIR create rate (POST /fhir/Patient with wrk) at 1 and 4 connections.
#
# Appends a dated table to bench/RESULTS.md (--no-record: print only).
# It builds nothing: run `make build` (release) first.
#
# usage: bench/hl7v2.sh [--no-record] [--duration SECONDS] [--rounds N]
# env: BUILD (default build), PORT_BASE (default 18380)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
DURATION=10
ROUNDS=1
PORT_BASE=${PORT_BASE:-18380}
RECORD=1
while [ $# -gt 0 ]; do
    case $1 in
    --no-record) RECORD=0 ;;
    --duration) DURATION=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "hl7v2.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
die() { echo "hl7v2.sh: FAIL: $*" >&2; exit 1; }
note() { echo "hl7v2.sh: $*" >&2; }

EHR=$BUILD/ehr
LOAD=$BUILD/bench/mllp_bench
[ -x "$EHR" ] && [ -x "$LOAD" ] || die "$EHR or $LOAD missing: run 'make build' first"
command -v wrk >/dev/null || die "wrk is not installed"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ehr-hl7bench.XXXXXX")
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
HTTP=$PORT_BASE
MLLP=$((PORT_BASE + 1))
"$EHR" user add --db "$TMP/ehr.db" --username bench --password "Secret-$$-$RANDOM" --role admin \
    >"$TMP/user.log" 2>&1 || { cat "$TMP/user.log" >&2; die "ehr user add failed"; }
TOKEN=$("$EHR" token --db "$TMP/ehr.db" --user bench --scope 'user/*.cruds' 2>/dev/null | tail -n1)
"$EHR" serve --port "$HTTP" --mllp-port "$MLLP" --db "$TMP/ehr.db" >"$TMP/serve.log" 2>&1 &
PID=$!
for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP/fhir/metadata")" = 200 ] && break
    kill -0 "$PID" 2>/dev/null || { cat "$TMP/serve.log" >&2; die "ehr serve exited"; }
    sleep 0.1
done

declare -A RPS P50 P99 ERR
run_mllp() {
    local c=$1 line
    note "round $ROUND: ORU^R01 over MLLP, $c connection(s), ${DURATION}s ..."
    line=$("$LOAD" 127.0.0.1 "$MLLP" "$c" "$DURATION" "$ROOT/bench/oru_r01.hl7")
    local k="mllp/$c"
    RPS[$k]+="$(sed 's/.*rps=\([^ ]*\).*/\1/' <<<"$line") "
    P50[$k]+="$(sed 's/.*p50_us=\([^ ]*\).*/\1/' <<<"$line") "
    P99[$k]+="$(sed 's/.*p99_us=\([^ ]*\).*/\1/' <<<"$line") "
    ERR[$k]=$((${ERR[$k]:-0} + $(sed 's/.*errors=\([^ ]*\).*/\1/' <<<"$line") +
        $(sed 's/.*notaa=\([^ ]*\).*/\1/' <<<"$line")))
}
run_fhir() {
    local c=$1 out line
    note "round $ROUND: FHIR create (POST /fhir/Patient), $c connection(s), ${DURATION}s ..."
    out=$(EHR_BENCH_BODY=$ROOT/bench/patient.json wrk -t1 -c"$c" -d"${DURATION}s" --latency \
        -s "$ROOT/bench/wrk/create.lua" -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:$HTTP/fhir/Patient")
    line=$(grep '^BENCH ' <<<"$out") || die "no BENCH line from wrk: $out"
    local k="fhir/$c"
    RPS[$k]+="$(sed 's/.* rps=\([^ ]*\).*/\1/' <<<"$line") "
    P50[$k]+="$(sed 's/.* p50_us=\([^ ]*\).*/\1/' <<<"$line") "
    P99[$k]+="$(sed 's/.* p99_us=\([^ ]*\).*/\1/' <<<"$line") "
    ERR[$k]=$((${ERR[$k]:-0} + $(sed 's/.* errors=\([^ ]*\).*/\1/' <<<"$line") +
        $(sed 's/.* non2xx=\([^ ]*\).*/\1/' <<<"$line")))
}
for ROUND in $(seq "$ROUNDS"); do
    for c in 1 4; do
        run_mllp "$c"
        run_fhir "$c"
    done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }

STORED=$("$EHR" hl7 list --db "$TMP/ehr.db" --status applied --limit 1000000 | tail -n +2 | wc -l)
table() {
    echo "| what | connections | per second | resources written/s | p50 ms | p99 ms | vs FHIR create | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for c in 1 4; do
        local m f
        m=$(median "${RPS[mllp/$c]}")
        f=$(median "${RPS[fhir/$c]}")
        printf '| ORU^R01 over MLLP (store, map, apply, ACK) | %d | %.0f | %.0f | %s | %s | %s | %d |\n' \
            "$c" "$m" "$(awk -v m="$m" 'BEGIN { print m * 6 }')" "$(ms "$(median "${P50[mllp/$c]}")")" \
            "$(ms "$(median "${P99[mllp/$c]}")")" "$(awk -v m="$m" -v f="$f" 'BEGIN { printf "%.0f%%", 100 * m / f }')" \
            "${ERR[mllp/$c]}"
        printf '| FHIR create (POST /fhir/Patient) | %d | %.0f | %.0f | %s | %s | 100%% | %d |\n' \
            "$c" "$f" "$f" "$(ms "$(median "${P50[fhir/$c]}")")" "$(ms "$(median "${P99[fhir/$c]}")")" \
            "${ERR[fhir/$c]}"
    done
}
TABLE=$(table)
echo "$TABLE"
if [ "$RECORD" = 1 ]; then
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — HL7 v2 ORU^R01 over MLLP — commit $(git rev-parse --short HEAD)"
        echo
        echo "Machine: $(nproc) CPU(s), $(grep -m1 '^model name' /proc/cpuinfo | sed 's/.*: //'), shared with other"
        echo "builds and tests (load average before: $LOAD_BEFORE), so absolute numbers are low and noisy;"
        echo "compare the two kinds in the same run. bench/hl7v2.sh, ${DURATION}s per run, $ROUNDS round(s) (medians),"
        echo "release build, SQLite synchronous=FULL. Each ORU^R01 (bench/oru_r01.hl7: 1 OBR, 5 OBX) is stored raw,"
        echo "mapped and applied as one transaction (1 patient match, 1 DiagnosticReport, 5 Observations, each"
        echo "conditional) and acknowledged; $STORED messages stored and applied in total. The FHIR baseline"
        echo "creates one Patient per request (wrk, bench/patient.json)."
        echo
        echo "$TABLE"
    } >>"$ROOT/bench/RESULTS.md"
    note "appended to bench/RESULTS.md"
fi
