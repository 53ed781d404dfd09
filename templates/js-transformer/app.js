// {{name}}: a Warden transformer (world warden:plugin/transformer@0.2.0). It upper-cases UTF-8
// text and appends the configured `suffix`, if any. Empty or non-UTF-8 input is an error.
import { config, log } from 'warden:plugin/host@0.2.0';

// `input` is a Uint8Array; return a Uint8Array, or throw a string to fail with that message.
export function transform(input) {
  if (input.length === 0) throw 'empty input';
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(input);
  } catch {
    throw 'input is not UTF-8';
  }
  log('info', `upper-casing ${input.length} bytes`);

  const suffix = config('suffix') ?? '';
  return new TextEncoder().encode(text.toUpperCase() + suffix);
}
