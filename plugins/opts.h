/*
 * opts.h - reading the options of a shipped plugin, which declares them in
 * a table (kpool_plugin.h): kpoold checked every value against it, added
 * the defaults and hands each in its normal form, so reading cannot fail.
 */
#ifndef KPOOL_OPTS_H
#define KPOOL_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kpool_plugin.h"

const char *opts_get(const struct kpool_option *o, size_t n, const char *key);
int64_t opts_int(const struct kpool_option *o, size_t n, const char *key);
bool opts_bool(const struct kpool_option *o, size_t n, const char *key);

#endif
