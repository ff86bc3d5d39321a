/*
 * oldsize.c - a fixture plugin as built against an older, shorter struct
 * kpool_plugin: its struct_size ends before handle_batch.  The loader must
 * treat handle_batch as absent, whatever the bytes there say, and use handle.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpool_plugin.h"

static kpool_status oldsize_handle(void *state, const struct kpool_job *job,
				   char reason[KPOOL_REASON_MAX])
{
	(void)state, (void)job, (void)reason;
	return KPOOL_DONE;
}

/* Never to be called: it lies past struct_size. */
static void oldsize_batch(void *state, const struct kpool_job *const *jobs, size_t n,
			  kpool_status *status, char (*reason)[KPOOL_REASON_MAX])
{
	(void)state, (void)jobs, (void)n, (void)status, (void)reason;
	abort();
}

const struct kpool_plugin kpool_plugin = {
    .abi_version = KPOOL_PLUGIN_ABI_VERSION,
    .struct_size = offsetof(struct kpool_plugin, handle_batch),
    .name = "oldsize",
    .version = "0.9",
    .handle = oldsize_handle,
    .handle_batch = oldsize_batch,
};
