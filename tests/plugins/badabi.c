/* badabi.c - a fixture plugin built for another ABI version; kpoold must refuse it. */
#include "kpool_plugin.h"

static kpool_status badabi_handle(void *state, const struct kpool_job *job,
				  char reason[KPOOL_REASON_MAX])
{
	(void)state, (void)job, (void)reason;
	return KPOOL_DONE;
}

const struct kpool_plugin kpool_plugin = {
    .abi_version = KPOOL_PLUGIN_ABI_VERSION + 98,
    .struct_size = sizeof(struct kpool_plugin),
    .name = "badabi",
    .handle = badabi_handle,
};
