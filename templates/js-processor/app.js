// {{name}}: a Warden processor (world warden:plugin/processor@0.2.0). It splits one UTF-8 record
// into one record per word (words are separated by whitespace); a record without words yields
// none. Non-UTF-8 input is an error.
import { log } from 'warden:plugin/host@0.2.0';

// `input` is a Uint8Array; return an array of Uint8Array, or throw a string to fail.
export function process(input) {
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(input);
  } catch {
    throw 'input is not UTF-8';
  }
  const encoder = new TextEncoder();
  const words = text.split(/\s+/).filter((word) => word !== '').map((word) => encoder.encode(word));
  log('debug', `${words.length} word(s)`);
  return words;
}
