#!/usr/bin/env bash
# bench/auth.sh - what security costs: FHIR read-by-id with a bearer token
# against the same server with --insecure-no-auth (both audit every read,
# durably), at 1 and 16 connections; and sign-in latency (argon2id), for a
# right password and for an unknown user (which must cost the same).
#
# usage: bench/auth.sh [--no-record]   (BUILD=build, DURATION=10s; ports: free ones)
# Appends a dated table to bench/RESULTS.md unless --no-record.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
DURATION=${DURATION:-10s}
RECORD=1
[ "${1:-}" = --no-record ] && RECORD=0
EHR=$BUILD/ehr
[ -x "$EHR" ] || { echo "auth.sh: $EHR missing: make build" >&2; exit 1; }
command -v wrk >/dev/null || { echo "auth.sh: wrk is not installed" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ehr-bench-auth.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

wait_up() {
    for _ in $(seq 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/fhir/metadata")" = 200 ] &&
            return 0
        sleep 0.1
    done
    echo "auth.sh: server on $1 did not start" >&2
    exit 1
}

PW="Secret-$$-$RANDOM"
"$EHR" user add --db "$TMP/on.db" --username bench --password "$PW" --role biller >/dev/null
"$EHR" user add --db "$TMP/on.db" --username reader --password "$PW" --role admin >/dev/null
TOKEN=$("$EHR" token --db "$TMP/on.db" --user reader --scope 'user/*.cruds' | tail -n1)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ON=$(free_port) OFF=$(free_port)
"$EHR" serve --port "$ON" --bind 127.0.0.1 --db "$TMP/on.db" >"$TMP/on.log" 2>&1 &
PIDS+=($!)
"$EHR" serve --port "$OFF" --db "$TMP/off.db" --insecure-no-auth >"$TMP/off.log" 2>&1 &
PIDS+=($!)
wait_up "$ON"
wait_up "$OFF"
BODY=$ROOT/bench/patient.json
curl -s -o /dev/null -X PUT -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/fhir+json' \
    --data-binary "$(sed 's/"resourceType" *: *"Patient"/"resourceType":"Patient","id":"bench"/' "$BODY")" \
    "http://127.0.0.1:$ON/fhir/Patient/bench"
curl -s -o /dev/null -X PUT -H 'Content-Type: application/fhir+json' \
    --data-binary "$(sed 's/"resourceType" *: *"Patient"/"resourceType":"Patient","id":"bench"/' "$BODY")" \
    "http://127.0.0.1:$OFF/fhir/Patient/bench"
for p in "$ON" "$OFF"; do
    h=()
    [ "$p" = "$ON" ] && h=(-H "Authorization: Bearer $TOKEN")
    [ "$(curl -s -o /dev/null -w '%{http_code}' "${h[@]}" "http://127.0.0.1:$p/fhir/Patient/bench")" = 200 ] ||
        { echo "auth.sh: the read does not work on $p" >&2; exit 1; }
done

declare -A ROW
read_run() { # name port conns [token]
    local hdr=() t=1
    [ -n "${4:-}" ] && hdr=(-H "Authorization: Bearer $4")
    [ "$3" -gt 1 ] && t=2
    echo "auth.sh: read, $1, $3 connection(s), $DURATION ..." >&2
    local out
    out=$(wrk -t"$t" -c"$3" -d"$DURATION" --latency -s "$ROOT/bench/wrk/report.lua" "${hdr[@]}" \
        "http://127.0.0.1:$2/fhir/Patient/bench" | grep '^BENCH ')
    local rps p50 p99 bad
    rps=$(sed 's/.* rps=\([^ ]*\).*/\1/' <<<"$out")
    p50=$(sed 's/.* p50_us=\([^ ]*\).*/\1/' <<<"$out")
    p99=$(sed 's/.* p99_us=\([^ ]*\).*/\1/' <<<"$out")
    bad=$(($(sed 's/.* errors=\([^ ]*\).*/\1/' <<<"$out") + $(sed 's/.* non2xx=\([^ ]*\).*/\1/' <<<"$out")))
    ROW[$1/$3]=$(printf '| read, %s | %s | %.0f | %.2f | %.2f | %s |' "$1" "$3" "$rps" \
        "$(awk -v u="$p50" 'BEGIN{print u/1000}')" "$(awk -v u="$p99" 'BEGIN{print u/1000}')" "$bad")
}
for c in 1 16; do
    read_run "token (auth on)" "$ON" "$c" "$TOKEN"
    read_run "--insecure-no-auth" "$OFF" "$c"
done

login_ms() { # user password n -> "median p90" in ms
    local i
    for i in $(seq "$3"); do
        curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H 'Content-Type: application/json' \
            -d "{\"username\":\"$1\",\"password\":\"$2\"}" "http://127.0.0.1:$ON/auth/login"
    done | tee -a "$TMP/login.txt" | awk '$1 != "200" && $1 != "401" { bad = 1 } { print $2 }
        END { if (bad) print "auth.sh: a sign-in failed" > "/dev/stderr" }' | sort -g |
        awk '{a[NR]=$1*1000} END {printf "%.1f %.1f", a[int((NR+1)/2)], a[int(NR*0.9)]}'
}
echo "auth.sh: sign-in latency ..." >&2
OK=$(login_ms bench "$PW" 20)
UNKNOWN=$(login_ms nobody "$PW" 20)
grep -q '^200 ' "$TMP/login.txt" || { echo "auth.sh: no sign-in succeeded:" >&2; sort "$TMP/login.txt" | uniq -c >&2; exit 1; }

NOW=$(date -u '+%Y-%m-%d %H:%M UTC')
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
CPU=$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*:[[:space:]]*//' || true)
{
    echo
    echo "## $NOW — commit $COMMIT — security (bench/auth.sh)"
    echo
    echo "Machine: $(nproc) CPU(s), ${CPU:-?}, load average before: $(cut -d' ' -f1-3 /proc/loadavg); wrk on the same machine, keep-alive, $DURATION per run."
    echo "Both servers audit every read before answering it (group commit; audit-only batches are appended to the WAL and fsynced within 1 s, docs/security.md); they differ only in the token check."
    echo
    echo "| what | connections | req/s | p50 ms | p99 ms | errors |"
    echo "|---|---:|---:|---:|---:|---:|"
    for c in 1 16; do
        echo "${ROW["token (auth on)/$c"]}"
        echo "${ROW["--insecure-no-auth/$c"]}"
    done
    echo
    echo "Sign-in (POST /auth/login, argon2id 2 passes 64 MiB, 20 sequential): right password median $(cut -d' ' -f1 <<<"$OK") ms, p90 $(cut -d' ' -f2 <<<"$OK") ms; unknown user median $(cut -d' ' -f1 <<<"$UNKNOWN") ms, p90 $(cut -d' ' -f2 <<<"$UNKNOWN") ms."
} >"$TMP/report.md"
cat "$TMP/report.md"
[ "$RECORD" = 1 ] && cat "$TMP/report.md" >>bench/RESULTS.md
exit 0
