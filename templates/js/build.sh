#!/usr/bin/env bash
# Builds the component into dist/{{name}}.wasm (componentize-js bundles the SpiderMonkey engine,
# so expect ~10 s and ~12 MB). Installs the build tools into node_modules/ the first time.
set -euo pipefail
cd "$(dirname "$0")"
NODE=${NODE:-node}
NPM=${NPM:-npm}

if [ ! -d node_modules ]; then
  "$NPM" install --no-audit --no-fund
fi
mkdir -p dist
"$NODE" build.mjs app.js wit plugin dist/{{name}}.wasm
