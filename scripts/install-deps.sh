#!/bin/sh
# Install what ehr needs to build, run and test, on Debian 12. Idempotent:
# installs only what is missing. Debian packages via apt-get (with sudo when
# not root); npm packages exactly as pinned in package-lock.json.
set -eu
cd "$(dirname "$0")/.."

PKGS="gcc make meson ninja-build pkg-config libmicrohttpd-dev libjansson-dev
libsqlite3-dev libsodium-dev libxml2-dev libssl-dev zlib1g-dev libcmocka-dev
libqrencode-dev libpq-dev postgresql postgresql-contrib python3 curl wrk sqlite3
ca-certificates chromium clang-format ${EHR_EXTRA_PKGS:-}"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
    echo "install-deps: installing Debian packages:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

# npm packages, pinned by package-lock.json; reinstalled when the lock changes.
stamp=node_modules/.lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
    echo "install-deps: installing npm packages from package-lock.json"
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json "$stamp"
fi
