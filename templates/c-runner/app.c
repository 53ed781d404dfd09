/* {{name}}: a Warden runner (world local:main/runner@0.1.0). It takes no input and returns a
 * greeting.
 *
 * The generated bindings are in gen/plugin.h. Return heap memory in `ret` and `err` (the
 * generated post-return code frees it), e.g. with plugin_string_dup, never a literal. */
#include "plugin.h"

bool exports_plugin_run(plugin_string_t *ret, plugin_string_t *err) {
  plugin_string_t message;
  plugin_string_set(&message, "{{name}} is running"); /* borrowed: the host copies it */
  local_main_host_log(&message);
  plugin_string_dup(ret, "Hello from {{name}}!");
  (void)err;
  return true;
}
