#!/usr/bin/env bash
# bench/ab.sh - two `ehr` binaries side by side: read by id and create, at
# 1 and 16 connections, each configuration measured on A then B back to
# back, round after round, so that load from elsewhere on a shared machine
# hits both alike. Prints each run and the medians; records nothing (copy
# what matters into bench/RESULTS.md by hand).
#
# usage: bench/ab.sh A_EHR B_EHR [SERVE_ARGS...]
#   e.g. bench/ab.sh /tmp/main/build/ehr build/ehr
# Both servers run with --insecure-no-auth (loopback only; every access is
# still audited), each on its own temporary database, plus SERVE_ARGS.
# env: ROUNDS (3), DURATION (6s), PORT_BASE (29090: A, +1: B), OPS ("read create")
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
A=$1 B=$2
shift 2
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-6s} PORT_BASE=${PORT_BASE:-29090}
OPS=${OPS:-read create}
BODY=$PWD/bench/patient.json
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ehr-ab.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

declare -A PORT ID RPS
PORT[A]=$PORT_BASE PORT[B]=$((PORT_BASE + 1))
for s in A B; do
    bin=$A
    [ $s = B ] && bin=$B
    "$bin" serve --port "${PORT[$s]}" --db "$TMP/$s.db" --insecure-no-auth "$@" >"$TMP/$s.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:${PORT[$s]}/fhir/metadata" && break
        sleep 0.1
    done
    ID[$s]=$(curl -s -X POST -H 'Content-Type: application/fhir+json' --data-binary "@$BODY" \
        "http://127.0.0.1:${PORT[$s]}/fhir/Patient" | grep -o '"id":"[^"]*"' | head -n1 | cut -d'"' -f4)
    [ -n "${ID[$s]}" ] || { cat "$TMP/$s.log" >&2; echo "ab.sh: $s did not create" >&2; exit 1; }
done

run() { # SERVER OP CONNS
    local t=1 url script=create.lua
    [ "$3" -gt 1 ] && t=2
    url="http://127.0.0.1:${PORT[$1]}/fhir/Patient"
    [ "$2" = read ] && url="$url/${ID[$1]}" script=report.lua
    local line
    line=$(EHR_BENCH_BODY=$BODY wrk -t$t -c"$3" -d"$DURATION" --latency -s "bench/wrk/$script" "$url" |
        grep '^BENCH ')
    local rps=${line#* rps=}
    rps=${rps%% *}
    RPS[$1/$2/$3]+="$rps "
    printf '%s %-6s %2s conn: %8.0f req/s\n' "$1" "$2" "$3" "$rps"
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
    for op in $OPS; do
        for c in 1 16; do
            run A "$op" "$c"
            run B "$op" "$c"
        done
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| operation | connections | A req/s | B req/s | B/A |"
echo "|---|---:|---:|---:|---:|"
for op in $OPS; do
    for c in 1 16; do
        a=$(median "${RPS[A/$op/$c]}") b=$(median "${RPS[B/$op/$c]}")
        printf '| %s | %s | %.0f | %.0f | %s |\n' "$op" "$c" "$a" "$b" \
            "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')"
    done
done
