/*
 * opts.c - see opts.h.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "opts.h"

/* The value of key (the last, if given more than once); NULL if it is not set. */
const char *opts_get(const struct kpool_option *o, size_t n, const char *key)
{
	const char *v = NULL;

	for (size_t i = 0; i < n; i++)
		if (strcmp(o[i].key, key) == 0)
			v = o[i].value;
	return v;
}

/* An INT, DURATION (ms) or SIZE (bytes) option's number; 0 if it is not set. */
int64_t opts_int(const struct kpool_option *o, size_t n, const char *key)
{
	const char *v = opts_get(o, n, key);

	return v ? strtoll(v, NULL, 10) : 0;
}

/* A BOOL option: true if it is "true"; false if it is "false" or not set. */
bool opts_bool(const struct kpool_option *o, size_t n, const char *key)
{
	const char *v = opts_get(o, n, key);

	return v && strcmp(v, "true") == 0;
}
