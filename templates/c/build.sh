#!/usr/bin/env bash
# Builds the component into dist/{{name}}.wasm: wit-bindgen writes the C bindings for wit/
# (world `plugin`) into gen/, clang compiles for WASI preview 1, and the Rust toolchain's
# wasm-component-ld links and wraps the module into a WASI 0.2 component.
set -euo pipefail
cd "$(dirname "$0")"
WIT_BINDGEN=${WIT_BINDGEN:-wit-bindgen}
if [ -z "${CLANG:-}" ]; then
  if command -v clang-19 >/dev/null; then CLANG=clang-19; else CLANG=clang; fi
fi
if [ -z "${WASM_COMPONENT_LD:-}" ]; then
  WASM_COMPONENT_LD=wasm-component-ld
  if command -v rustc >/dev/null; then
    linker="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/wasm-component-ld"
    if [ -x "$linker" ]; then WASM_COMPONENT_LD=$linker; fi
  fi
fi
for tool in "$WIT_BINDGEN" "$CLANG" "$WASM_COMPONENT_LD"; do
  if ! command -v "$tool" >/dev/null; then
    echo "build.sh: $tool not found (see README.md; WIT_BINDGEN, CLANG and WASM_COMPONENT_LD override)" >&2
    exit 127
  fi
done

rm -rf gen
mkdir -p gen dist
# wit-bindgen reports every file it writes; show its output only when it fails.
if ! log=$("$WIT_BINDGEN" c wit --world plugin --out-dir gen 2>&1); then
  printf '%s\n' "$log" >&2
  exit 1
fi
"$CLANG" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Werror -Igen \
  app.c gen/plugin.c gen/plugin_component_type.o \
  -fuse-ld="$WASM_COMPONENT_LD" -o dist/{{name}}.wasm
