#!/usr/bin/env bash
# `make soak`: a bounded load against a real stack (bench/src/bin/soak.rs): clients cycle
# capsules through create, exec, upload, download, pause, resume and destroy for
# WRENN_SOAK_SECS (default 600); prints one line per operation, throughput, errors by code and
# the resident memory of the control plane and the agent; exits non-zero on a leak, a failed
# data check or a capsule left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/wrenn-target}"
bash scripts/images-ensure.sh
eval "$(bash scripts/services.sh)"
exec cargo run -q --release -p wrenn-bench --bin soak
