#!/bin/sh
# Black-box tests: each tests/api/test_*.py starts its own `ehr serve` on a
# loopback port with a temporary database (see tests/api/harness.py).
set -eu
cd "$(dirname "$0")/api"
: "${EHR_BIN:?set EHR_BIN to the ehr binary}"
export EHR_BIN
status=0
for t in test_*.py; do
    [ -e "$t" ] || continue
    echo "== $t"
    python3 "$t" || status=1
done
exit $status
