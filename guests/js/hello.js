// The hello guest of the seed `runner` world, in JavaScript.
import { log } from 'local:main/host@0.0.1';

export function run() {
  log('hello from JavaScript');
  return 'Hello from JavaScript!';
}
