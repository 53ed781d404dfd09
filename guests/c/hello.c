/* The hello guest of the seed `runner` world, in C. */
#include "runner.h"

bool exports_runner_run(runner_string_t *ret, runner_string_t *err) {
  runner_string_t message;
  runner_string_set(&message, "hello from C"); /* borrowed: the host copies it */
  local_main_host_log(&message);
  runner_string_dup(ret, "Hello from C!"); /* heap: the generated post-return frees it */
  (void)err;
  return true;
}
