// Builds a JavaScript source into a WebAssembly component with componentize-js's API.
//   node build.mjs SOURCE.js WIT_DIR WORLD OUT.wasm
// The default features are kept: the component also imports WASI clocks, random, stdio and
// wasi:http, which Warden links (and denies network use unless granted).
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';

const [sourcePath, witPath, worldName, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node build.mjs SOURCE.js WIT_DIR WORLD OUT.wasm');
  process.exit(2);
}
const { component } = await componentize({ sourcePath, witPath, worldName });
await writeFile(out, component);
