#!/usr/bin/env bash
# Builds the hostile formatter components the tests load (committed beside this script, so the
# test command needs no WebAssembly toolchain). Needs `wasm-tools` (cargo install wasm-tools).
#   bash core/tests/formatters/build.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
wit="$here/../../../extension-api/wit/since_v0.1.0"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

declare -A behaviour=(
    [loop]='(loop $l (br $l))'
    [spin]='(loop $l (local.set $n (i64.add (local.get $n) (i64.const 1))) (br_if $l (i64.lt_u (local.get $n) (i64.const 100000000000))))'
    [alloc]='(loop $l (br_if $l (i32.ne (memory.grow (i32.const 256)) (i32.const -1))))'
    [trap]='unreachable'
    [error]=''
)

build() { # name behaviour world-dir version
    local name=$1 body=$2 world=$3 version=$4
    sed -e "s|BEHAVIOUR|$body|" -e "s|format@0.1.0#format|format@$version#format|" \
        "$here/hostile.wat.in" > "$tmp/$name.wat"
    wasm-tools component embed "$world" --world formatter "$tmp/$name.wat" -o "$tmp/$name.core.wasm"
    wasm-tools component new "$tmp/$name.core.wasm" -o "$here/$name.wasm"
    echo "built $here/$name.wasm"
}

for name in "${!behaviour[@]}"; do
    build "$name" "${behaviour[$name]}" "$wit" 0.1.0
done

# Built against a world version this control plane does not run.
mkdir -p "$tmp/wit-0.2.0"
sed 's|wrenn:formatter@0.1.0|wrenn:formatter@0.2.0|' "$wit/formatter.wit" > "$tmp/wit-0.2.0/formatter.wit"
build wrong-version '' "$tmp/wit-0.2.0" 0.2.0
