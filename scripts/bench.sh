#!/usr/bin/env bash
# `make bench`: the figures of BENCHMARKS.md. Each bench program measures its figure against a
# baseline in the same run (alternating the two) and prints one line per figure.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/wrenn-target}"
bash scripts/images-ensure.sh
eval "$(bash scripts/services.sh)"
status=0
run() { # package binary
    if grep -qs "name = \"$2\"" "$3/Cargo.toml" || [ -f "$3/src/bin/$2.rs" ]; then
        echo "== $2"
        cargo run -q --release -p "$1" --bin "$2" || status=1
    else
        echo "== $2: not built in this tree"
    fi
}
run wrenn-envd envd-bench envd
run wrenn-agent agent-bench agent
run wrenn-bench cp-bench bench
run wrenn-bench events-bench bench
exit $status
