/* An image filter (world warden:plugin/transformer): a binary PPM (P6, maxval 255) in, the
 * same image in grayscale as a binary PGM (P5) out, using integer Rec. 601 luma weights.
 * Every size is checked against the input before it is used. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "transformer.h"

#define MAX_SIDE 16384

static bool fail(transformer_string_t *err, const char *why) {
  transformer_string_dup(err, why);
  return false;
}

/* Reads an unsigned decimal after whitespace; advances *at. Returns -1 on error. */
static long read_number(const uint8_t *data, size_t len, size_t *at) {
  while (*at < len && (data[*at] == ' ' || data[*at] == '\n' || data[*at] == '\r' || data[*at] == '\t')) (*at)++;
  long value = 0;
  size_t start = *at;
  while (*at < len && data[*at] >= '0' && data[*at] <= '9' && *at - start < 6) value = value * 10 + (data[(*at)++] - '0');
  return *at == start ? -1 : value;
}

bool exports_transformer_transform(transformer_list_u8_t *input, transformer_list_u8_t *ret,
                                   transformer_string_t *err) {
  const uint8_t *data = input->ptr;
  size_t len = input->len, at = 2;
  if (len < 2 || data[0] != 'P' || data[1] != '6') return fail(err, "expected a binary PPM (P6)");
  long width = read_number(data, len, &at), height = read_number(data, len, &at);
  long maxval = read_number(data, len, &at);
  if (width <= 0 || height <= 0 || width > MAX_SIDE || height > MAX_SIDE) return fail(err, "bad PPM size");
  if (maxval != 255) return fail(err, "only maxval 255 is supported");
  at++; /* the single whitespace byte after maxval */
  size_t pixels = (size_t)width * (size_t)height;
  if (at > len || len - at != pixels * 3) return fail(err, "PPM pixel data has the wrong length");

  char header[64];
  int header_len = snprintf(header, sizeof header, "P5\n%ld %ld\n255\n", width, height);
  uint8_t *out = malloc((size_t)header_len + pixels);
  if (out == NULL) return fail(err, "out of memory");
  memcpy(out, header, (size_t)header_len);
  for (size_t i = 0; i < pixels; i++) {
    const uint8_t *rgb = data + at + 3 * i;
    out[header_len + i] = (uint8_t)((299 * rgb[0] + 587 * rgb[1] + 114 * rgb[2]) / 1000);
  }

  char line[96];
  snprintf(line, sizeof line, "grayscale %ldx%ld", width, height);
  transformer_string_t message;
  transformer_string_set(&message, line);
  warden_plugin_host_log(WARDEN_PLUGIN_HOST_LEVEL_INFO, &message);

  ret->ptr = out;
  ret->len = (size_t)header_len + pixels;
  return true;
}
