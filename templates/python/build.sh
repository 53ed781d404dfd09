#!/usr/bin/env bash
# Builds the component into dist/{{name}}.wasm: componentize-py generates the bindings for
# wit/ (world `plugin`), then bundles the interpreter, app.py and the modules it imports.
set -euo pipefail
cd "$(dirname "$0")"
COMPONENTIZE_PY=${COMPONENTIZE_PY:-componentize-py}
if ! command -v "$COMPONENTIZE_PY" >/dev/null; then
  echo "build.sh: $COMPONENTIZE_PY not found: pip install componentize-py==0.25.1, or set COMPONENTIZE_PY" >&2
  exit 127
fi

mkdir -p dist
"$COMPONENTIZE_PY" -d wit -w plugin componentize app -o dist/{{name}}.wasm
