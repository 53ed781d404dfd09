/* {{name}}: a Warden transformer (world warden:plugin/transformer@0.2.0). It upper-cases UTF-8
 * text (ASCII letters; other characters pass through) and appends the configured `suffix`, if
 * any. Empty or non-UTF-8 input is an error.
 *
 * The generated bindings are in gen/plugin.h. Return heap memory in `ret` and `err` (the
 * generated post-return code frees it); the input is yours to reuse or free. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "plugin.h"

static bool fail(plugin_list_u8_t *input, plugin_string_t *err, const char *message) {
  plugin_list_u8_free(input);
  plugin_string_dup(err, message);
  return false;
}

/* True when the bytes are well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF). */
static bool is_utf8(const uint8_t *s, size_t len) {
  for (size_t i = 0; i < len;) {
    uint8_t c = s[i], lo = 0x80, hi = 0xBF;
    size_t extra;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (len - i <= extra || s[i + 1] < lo || s[i + 1] > hi) return false;
    for (size_t k = 2; k <= extra; k++)
      if ((s[i + k] & 0xC0) != 0x80) return false;
    i += extra + 1;
  }
  return true;
}

bool exports_plugin_transform(plugin_list_u8_t *input, plugin_list_u8_t *ret, plugin_string_t *err) {
  if (input->len == 0) return fail(input, err, "empty input");
  if (!is_utf8(input->ptr, input->len)) return fail(input, err, "input is not UTF-8");

  char line[64];
  snprintf(line, sizeof line, "upper-casing %zu bytes", input->len);
  plugin_string_t message;
  plugin_string_set(&message, line); /* borrowed: the host copies it */
  warden_plugin_host_log(WARDEN_PLUGIN_HOST_LEVEL_INFO, &message);

  for (size_t i = 0; i < input->len; i++)
    if (input->ptr[i] >= 'a' && input->ptr[i] <= 'z') input->ptr[i] -= 'a' - 'A';

  plugin_string_t key, suffix;
  plugin_string_set(&key, "suffix");
  if (warden_plugin_host_config(&key, &suffix)) { /* `suffix` is ours to free */
    uint8_t *grown = realloc(input->ptr, input->len + suffix.len);
    if (grown == NULL) {
      plugin_string_free(&suffix);
      return fail(input, err, "out of memory");
    }
    memcpy(grown + input->len, suffix.ptr, suffix.len);
    input->ptr = grown;
    input->len += suffix.len;
    plugin_string_free(&suffix);
  }
  *ret = *input; /* the input buffer becomes the output */
  return true;
}
