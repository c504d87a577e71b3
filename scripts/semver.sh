#!/usr/bin/env bash
# The semver check of the extension contract: `wrenn-extension-api` as it is now against the
# release named in extension-api/semver-baseline (a commit of this repository). A breaking
# change fails unless the crate's version says so (0.x: bump the minor); after a release,
# point the baseline at it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/wrenn-target}"
if ! command -v cargo-semver-checks >/dev/null 2>&1; then
    echo "semver: installing cargo-semver-checks"
    cargo install --locked cargo-semver-checks
fi
baseline="$(tr -d '[:space:]' < extension-api/semver-baseline)"
if ! git cat-file -e "${baseline}^{commit}" 2>/dev/null; then
    echo "semver: baseline $baseline is not in this clone's history" >&2
    exit 1
fi
cargo semver-checks check-release -p wrenn-extension-api --baseline-rev "$baseline"
