/*
 * marker.c - a fixture plugin that says it was loaded: its constructor
 * appends "loaded as UID" to the file named by KPOOL_TEST_MARKER, before any
 * check of kpoold's can refuse it, and its init() appends "init as UID".
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kpool_plugin.h"

static void mark(const char *what)
{
	const char *path = getenv("KPOOL_TEST_MARKER");
	FILE *f = path ? fopen(path, "a") : NULL;

	if (f) {
		fprintf(f, "%s as %u\n", what, (unsigned)geteuid());
		fclose(f);
	}
}

__attribute__((constructor)) static void loaded(void)
{
	mark("loaded");
}

static void *marker_init(const struct kpool_host *host, const struct kpool_option *opts,
			 size_t n_opts, char *err, size_t errlen)
{
	(void)host;
	(void)opts;
	(void)n_opts;
	(void)err;
	(void)errlen;
	mark("init");
	return (void *)1;
}

static kpool_status marker_handle(void *state, const struct kpool_job *job,
				  char reason[KPOOL_REASON_MAX])
{
	(void)state;
	(void)job;
	(void)reason;
	return KPOOL_DONE;
}

const struct kpool_plugin kpool_plugin = {
    .abi_version = KPOOL_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(struct kpool_plugin),
    .name = "marker",
    .init = marker_init,
    .handle = marker_handle,
};
