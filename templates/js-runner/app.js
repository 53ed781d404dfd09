// {{name}}: a Warden runner (world local:main/runner@0.1.0). It takes no input and returns a
// greeting.
import { log } from 'local:main/host@0.1.0';

// Return a string, or throw a string to fail with that message.
export function run() {
  log('{{name}} is running');
  return 'Hello from {{name}}!';
}
