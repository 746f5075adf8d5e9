#!/usr/bin/env bash
# bench/search.sh - FHIR search at scale: builds a ladder of SQLite
# databases (default 10k, 100k, 1M resources) by cloning the Synthea
# patients of ../shared/data/synthea/r4-2019 under new ids, each resource
# indexed with every R4 search parameter as a write does it, and measures
# at each rung p50/p99 (wall and CPU time) of the queries of issue 4 next
# to the baseline of a bare read by id, plus write throughput. The table
# is appended, dated, with the machine's load, to bench/RESULTS.md.
#
# It builds nothing: run `make build` (release) first, or set BUILD.
#
# usage: bench/search.sh [--ladder 10000,100000,1000000] [--iters N] [--no-record]
# env:   BUILD (default: build), DB (default: a temporary file, removed after)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
LADDER=10000,100000,1000000
ITERS=300
RECORD=1
while [ $# -gt 0 ]; do
    case $1 in
    --ladder) LADDER=$2; shift 2 ;;
    --iters) ITERS=$2; shift 2 ;;
    --no-record) RECORD=0; shift ;;
    *) echo "usage: bench/search.sh [--ladder N,N,...] [--iters N] [--no-record]" >&2; exit 2 ;;
    esac
done
BIN=$BUILD/bench/search_bench
[ -x "$BIN" ] || { echo "bench/search.sh: $BIN is missing: run make build first" >&2; exit 2; }
[ -d ../shared/data/synthea/r4-2019 ] || { echo "bench/search.sh: ../shared/data/synthea/r4-2019 is absent" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
DB=${DB:-$TMP/search.db}
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
OUT=$TMP/table.md
"$BIN" --db "$DB" --ladder "$LADDER" --iters "$ITERS" > "$OUT"
cat "$OUT"
if [ "$RECORD" = 1 ]; then
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M') UTC — search ladder, commit $(git rev-parse --short HEAD)"
        echo
        echo "Machine: $(nproc) CPU(s), load average before: $LOAD (shared with other builds and tests:"
        echo "wall times are noisy, CPU times steadier). In process: query string parse + the store's"
        echo "search (count up to 2000 + first page), $ITERS runs per query with varying patients and codes."
        echo
        cat "$OUT"
    } >> bench/RESULTS.md
fi
