// Tries to reach the network. Warden grants no network access, so fetch fails, and the guest
// reports the failure as its error (outcome `guest_error`), without crashing anything.
import { log } from 'local:main/host@0.0.1';

export async function run() {
  try {
    const response = await fetch('http://example.com/');
    return `unexpected: HTTP ${response.status}`;
  } catch (error) {
    const message = `fetch failed: ${error}`;
    log(message);
    throw message; // a thrown value becomes Err(string)
  }
}
