#!/usr/bin/env bash
# Installs and starts what the tests need, then runs every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
  if ! have apt-get; then
    echo "test.sh: $* is missing and apt-get is not available to install it" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# The README test runs the README's curl lines against the binary.
have curl || apt_install curl
# SQLite needs nothing: sqlx bundles it.

cargo test --workspace --locked
