#!/usr/bin/env bash
# bench/run.sh - FHIR read-by-id and create: requests per second and
# latency (p50, p99) at 1 and 16 connections, for
#
#   ehr    `ehr serve` on a temporary SQLite database (the real thing)
#   http   bench/httpd: src/http alone, a handler copying stored bytes
#   bare   bench/bare: libmicrohttpd alone, same thread pool (the baseline)
#
# prints a Markdown table with each line's ratio to bare and appends it,
# dated, with the machine, to bench/RESULTS.md.
#
# It builds nothing: run `make build` (release) first. The load generator
# is wrk (Debian's), on the same machine, so it competes for the CPUs; the
# ratios are what to compare across runs, more than absolute numbers.
#
# usage: bench/run.sh [--bare-only] [--no-record] [--duration 10s] [--rounds N]
#   --bare-only   measure bare and http only (no `ehr serve` needed)
#   --no-record   print the table, do not append to bench/RESULTS.md
#   --rounds N    repeat everything N times and report medians (noisy machines)
# env:
#   BUILD            build directory (default: build)
#   DURATION         per measurement, wrk syntax (default: 10s)
#   ROUNDS           as --rounds (default: 1)
#   PORT_BASE        ehr on PORT_BASE, bare +1, http +2 (default: 18080)
#   WRK_THREADS      wrk threads for the 16-connection runs (default: 2, 1 on one CPU)
#   EHR_BENCH_TOKEN  a bearer token for ehr serve, if it wants one (else the
#                    script tries `ehr user add` + `ehr token`)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-1}
PORT_BASE=${PORT_BASE:-18080}
BODY=$ROOT/bench/patient.json
RECORD=1
BARE_ONLY=0
while [ $# -gt 0 ]; do
    case $1 in
    --bare-only) BARE_ONLY=1 ;;
    --no-record) RECORD=0 ;;
    --duration) DURATION=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "run.sh: FAIL: $*" >&2; exit 1; }
note() { echo "run.sh: $*" >&2; }

command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
command -v curl >/dev/null || die "curl is not installed"
[ -x "$BUILD/bench/bare" ] && [ -x "$BUILD/bench/httpd" ] ||
    die "$BUILD/bench/bare or httpd missing: run 'make build' first (or set BUILD=dir)"
case $(meson introspect "$BUILD" --buildoptions 2>/dev/null |
    grep -o '"name": "buildtype", "value": "[a-z]*"' | sed 's/.*"value": "//; s/"//') in
release) ;;
"") note "cannot tell the build type of $BUILD; numbers are meaningful for release builds only" ;;
*) note "warning: $BUILD is not a release build; numbers will be low" ;;
esac

NPROC=$(nproc)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
CPU=$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*:[[:space:]]*//' || true)
WRK_THREADS=${WRK_THREADS:-$([ "$NPROC" -ge 2 ] && echo 2 || echo 1)}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ehr-bench.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

# start NAME PORT CMD... : run a server in the background, wait until
# GET /fhir/metadata answers 200. The pid goes to $SERVER_PID.
start() {
    local name=$1 port=$2
    shift 2
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
        die "port $port is already in use (set PORT_BASE)"
    fi
    "$@" >"$TMP/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    local i code
    for i in $(seq 300); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            sed 's/^/    /' "$TMP/$name.log" >&2
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/fhir/metadata" || true)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    sed 's/^/    /' "$TMP/$name.log" >&2
    die "$name did not answer GET /fhir/metadata with 200 within 30 s (last: $code)"
}

declare -A RPS P50 P99 ERR PORTS READ AUTHS
TARGETS=()

# measure TARGET OP CONNS: one wrk run; results appended (space-separated)
measure() {
    local target=$1 op=$2 conns=$3
    local threads=1 url script
    [ "$conns" -gt 1 ] && threads=$WRK_THREADS
    if [ "$op" = read ]; then
        url="http://127.0.0.1:${PORTS[$target]}${READ[$target]}" script=report.lua
    else
        url="http://127.0.0.1:${PORTS[$target]}/fhir/Patient" script=create.lua
    fi
    local hdr=()
    [ -n "${AUTHS[$target]:-}" ] && hdr=(-H "Authorization: Bearer ${AUTHS[$target]}")
    note "round $ROUND: $target $op, $conns connection(s), $DURATION ..."
    local out line
    out=$(EHR_BENCH_BODY=$BODY wrk -t"$threads" -c"$conns" -d"$DURATION" --latency \
        -s "$ROOT/bench/wrk/$script" "${hdr[@]}" "$url") || die "wrk failed: $out"
    line=$(grep '^BENCH ' <<<"$out") || die "no BENCH line from wrk: $out"
    local k="$target/$op/$conns"
    RPS[$k]+="$(field "$line" rps) "
    P50[$k]+="$(field "$line" p50_us) "
    P99[$k]+="$(field "$line" p99_us) "
    ERR[$k]=$((${ERR[$k]:-0} + $(field "$line" errors) + $(field "$line" non2xx)))
}

# field LINE NAME: the value of NAME=... in a BENCH line
field() { sed "s/.* $2=\([^ ]*\).*/\1/" <<<"$1"; }

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

# ---- ehr serve ----
EHR_NOTE=""
if [ "$BARE_ONLY" = 0 ]; then
    EHR="$BUILD/ehr"
    [ -x "$EHR" ] || EHR="$BUILD/src/cli/ehr"
    [ -x "$EHR" ] || die "$BUILD/ehr missing: run 'make build' first"
    PORT=$PORT_BASE
    if ! start ehr "$PORT" "$EHR" serve --port "$PORT" --db "$TMP/ehr.db"; then
        if grep -q "unknown command 'serve'" "$TMP/ehr.log"; then
            die "$EHR has no 'serve' subcommand yet; run with --bare-only to measure the baselines"
        fi
        die "'ehr serve' exited before it was ready (its output is above)"
    fi
    AUTH=()
    [ -n "${EHR_BENCH_TOKEN:-}" ] && AUTH=(-H "Authorization: Bearer $EHR_BENCH_TOKEN")
    create_patient() {
        curl -s -D "$TMP/created.h" -o "$TMP/created.json" -w '%{http_code}' "${AUTH[@]}" \
            -H 'Content-Type: application/fhir+json' --data-binary "@$BODY" \
            "http://127.0.0.1:$PORT/fhir/Patient"
    }
    code=$(create_patient)
    if { [ "$code" = 401 ] || [ "$code" = 403 ]; } && [ -z "${EHR_BENCH_TOKEN:-}" ]; then
        note "ehr serve wants a token; making a user 'bench' and a token"
        "$EHR" user add --db "$TMP/ehr.db" --username bench --password "bench-$$-$RANDOM" \
            --role admin >"$TMP/user.log" 2>&1 || { cat "$TMP/user.log" >&2; die "ehr user add failed; set EHR_BENCH_TOKEN"; }
        EHR_BENCH_TOKEN=$("$EHR" token --db "$TMP/ehr.db" --user bench --scope 'system/*.*' 2>"$TMP/token.log" | tail -n1) ||
            { cat "$TMP/token.log" >&2; die "ehr token failed; set EHR_BENCH_TOKEN"; }
        AUTH=(-H "Authorization: Bearer $EHR_BENCH_TOKEN")
        code=$(create_patient)
    fi
    [ "$code" = 201 ] || { cat "$TMP/created.json" >&2; die "POST /fhir/Patient answered $code, not 201"; }
    ID=$(grep -i '^Location:' "$TMP/created.h" | sed -E 's#.*/Patient/([^/[:space:]]+).*#\1#' | tr -d '\r')
    [ -n "$ID" ] || ID=$(grep -o '"id":"[^"]*"' "$TMP/created.json" | head -n1 | cut -d'"' -f4)
    [ -n "$ID" ] || die "cannot find the new Patient's id (no Location header, no id)"
    size=$(curl -s -o "$TMP/read.json" -w '%{http_code} %{size_download}' "${AUTH[@]}" \
        "http://127.0.0.1:$PORT/fhir/Patient/$ID")
    [ "${size%% *}" = 200 ] || die "GET /fhir/Patient/$ID answered ${size%% *}"
    EHR_NOTE="ehr reads Patient/$ID (${size##* } bytes as served)."
    TARGETS+=(ehr) PORTS[ehr]=$PORT READ[ehr]=/fhir/Patient/$ID AUTHS[ehr]=${EHR_BENCH_TOKEN:-}
fi

# ---- baselines ----
PORT=$((PORT_BASE + 1))
start bare "$PORT" "$BUILD/bench/bare" --port "$PORT" --body "$BODY" || die "bench/bare did not start"
TARGETS+=(bare) PORTS[bare]=$PORT READ[bare]=/fhir/Patient/bench
PORT=$((PORT_BASE + 2))
start http "$PORT" "$BUILD/bench/httpd" --port "$PORT" --body "$BODY" || die "bench/httpd did not start"
TARGETS+=(http) PORTS[http]=$PORT READ[http]=/fhir/Patient/bench

# All servers run at once (idle ones cost nothing) and each configuration
# is measured on all of them back to back, so that load from elsewhere on
# the machine hits them alike; with ROUNDS > 1 the medians are reported.
for ROUND in $(seq "$ROUNDS"); do
    for op in read create; do
        for c in 1 16; do
            for t in "${TARGETS[@]}"; do
                measure "$t" "$op" "$c"
            done
        done
    done
done

# ---- report ----
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
table() {
    echo "| server | operation | connections | req/s | p50 ms | p99 ms | vs bare | errors |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    local target op conns k rps base ratio
    for target in ehr http bare; do
        [ -n "${PORTS[$target]:-}" ] || continue
        for op in read create; do
            for conns in 1 16; do
                k="$target/$op/$conns"
                rps=$(median "${RPS[$k]}")
                base=$(median "${RPS[bare/$op/$conns]}")
                ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN { r = b > 0 ? 100 * a / b : 0; printf (r < 10 ? "%.1f%%" : "%.0f%%"), r }')
                printf '| %s | %s | %s | %.0f | %s | %s | %s | %s |\n' "$target" "$op" "$conns" \
                    "$rps" "$(ms "$(median "${P50[$k]}")")" "$(ms "$(median "${P99[$k]}")")" \
                    "$ratio" "${ERR[$k]}"
            done
        done
    done
}

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git diff --quiet HEAD 2>/dev/null || echo "+changes")
{
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — commit $COMMIT$DIRTY"
    echo
    echo "Machine: $NPROC CPU(s), ${CPU:-unknown CPU}, load average before: $LOAD_BEFORE;" \
        "wrk on the same machine (-t1 at 1 connection, -t$WRK_THREADS at 16), keep-alive," \
        "$DURATION per run, $ROUNDS round(s) (medians)."
    echo "Body: bench/patient.json ($(wc -c <"$BODY") bytes). $EHR_NOTE"
    [ "$BARE_ONLY" = 1 ] && echo "ehr serve not measured (--bare-only)."
    echo "\"errors\" counts socket errors, timeouts and non-2xx answers."
    echo
    table
    echo
} >"$TMP/section.md"

cat "$TMP/section.md"
if [ "$RECORD" = 1 ]; then
    [ -f bench/RESULTS.md ] || printf '# Benchmark results\n\nAppended by bench/run.sh, newest last.\n\n' >bench/RESULTS.md
    cat "$TMP/section.md" >>bench/RESULTS.md
    note "appended to bench/RESULTS.md"
fi
