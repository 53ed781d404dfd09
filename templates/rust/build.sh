#!/usr/bin/env bash
# Builds the component into dist/{{name}}.wasm. wasm32-wasip2 produces a component directly.
set -euo pipefail
cd "$(dirname "$0")"

cargo build --release --target wasm32-wasip2
mkdir -p dist
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{name_snake}}.wasm" dist/{{name}}.wasm
