// {{name}}: a Warden aggregator (world warden:plugin/aggregator@0.2.0). Each record is an
// integer; `finish` emits one JSON record with how many there were and their sum.
//
// Warden keeps the state between records and hands it to each `step` (empty for the first), so
// the plugin itself remembers nothing. Here the state is the text `COUNT SUM`.
import { log } from 'warden:plugin/host@0.2.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function decodeState(state) {
  if (state.length === 0) return { count: 0n, sum: 0n };
  const match = /^([0-9]+) (-?[0-9]+)$/.exec(decoder.decode(state));
  if (!match) throw 'bad state';
  return { count: BigInt(match[1]), sum: BigInt(match[2]) };
}

// `state` and `input` are Uint8Arrays; return the new state, or throw a string to fail.
export function step(state, input) {
  const totals = decodeState(state);
  const text = decoder.decode(input).trim();
  if (!/^[+-]?[0-9]+$/.test(text)) throw `not an integer: ${text}`;
  totals.count += 1n;
  totals.sum += BigInt(text);
  return encoder.encode(`${totals.count} ${totals.sum}`);
}

// Returns the run's records (an array of Uint8Array).
export function finish(state) {
  const totals = decodeState(state);
  log('info', `${totals.count} record(s)`);
  return [encoder.encode(`{"count":${totals.count},"sum":${totals.sum}}`)];
}
