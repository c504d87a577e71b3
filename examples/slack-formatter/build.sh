#!/usr/bin/env bash
# Builds formatter.wasm, a WebAssembly component of the world wrenn:formatter/format@0.1.0,
# from src/slack.c with clang's wasm32 target (no Rust wasm32 target, no libc needed).
# Tools: Debian's clang-16 and lld-16; `cargo install wasm-tools wit-bindgen-cli`.
set -euo pipefail
cd "$(dirname "$0")"
WIT=../../extension-api/wit/since_v0.1.0
CLANG=${CLANG:-clang-16}
# clang runs `wasm-ld` for the wasm32 target; Debian installs it as wasm-ld-16.
export PATH="/usr/lib/llvm-16/bin:$PATH"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# 1. C bindings of the world: formatter.h, formatter.c, formatter_component_type.o.
wit-bindgen c "$WIT" --world formatter --out-dir "$out"
# 2. A core wasm module: the bindings, the formatter and a tiny runtime (bump allocator).
"$CLANG" --target=wasm32 -O2 -nostdlib -ffreestanding -Iinclude -I"$out" \
    -mexec-model=reactor -Wl,--no-entry -Wl,--export-dynamic -Wl,--strip-all \
    -o "$out/core.wasm" \
    "$out/formatter.c" "$out/formatter_component_type.o" src/slack.c src/runtime.c
# 3. The component: the core module wrapped with the world's types.
wasm-tools component new "$out/core.wasm" -o formatter.wasm
wasm-tools validate --features component-model formatter.wasm
echo "built $(pwd)/formatter.wasm ($(stat -c %s formatter.wasm) bytes)"
