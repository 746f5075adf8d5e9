#!/bin/sh
# The browser tests (tests/e2e/*.test.mjs): the clinician app in Debian's
# headless chromium, driven by playwright-core (package-lock.json), against
# a real `ehr serve` started by each test file on a free loopback port.
# EHR_BIN names the program (default build/ehr). Screenshots go to
# build-e2e/screenshots/ (EHR_E2E_SHOTS to change). Without chromium or
# playwright-core the run says so and skips (exit 0).
set -eu
cd "$(dirname "$0")/.."
: "${EHR_BIN:=$PWD/build/ehr}"
export EHR_BIN
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
    echo "e2e: skipped: no chromium at $CHROMIUM (scripts/install-deps.sh installs it)"
    exit 0
fi
if [ ! -d node_modules/playwright-core ]; then
    echo "e2e: skipped: playwright-core is not installed (make deps)"
    exit 0
fi
exec node --test --test-concurrency=2 --test-reporter=spec tests/e2e/
