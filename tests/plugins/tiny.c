/* tiny.c - a fixture plugin whose struct_size is too small to hold handle: refused. */
#include <stddef.h>

#include "kpool_plugin.h"

const struct kpool_plugin kpool_plugin = {
    .abi_version = KPOOL_PLUGIN_ABI_VERSION,
    .struct_size = offsetof(struct kpool_plugin, init),
    .name = "tiny",
};
