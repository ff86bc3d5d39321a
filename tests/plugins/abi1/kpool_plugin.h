/*
 * kpool_plugin.h - the ABI between kpoold and a job handler plugin.
 *
 * This is the only header a plugin includes.  A plugin is a shared object
 * dropped into plugin_dir as NAME.so that exports exactly one symbol,
 * kpool_plugin, written as
 *
 *	const struct kpool_plugin kpool_plugin = {
 *		KPOOL_PLUGIN_HEADER,
 *		.name = "probe", .version = "1.0",
 *		.init = probe_init, .handle = probe_handle, .fini = probe_fini,
 *	};
 *
 * The struct only grows at its end; the loader treats fields past
 * struct_size as absent, so a plugin built against an older header keeps
 * loading.  A changed meaning of an existing field bumps the ABI version.
 */
#ifndef KPOOL_PLUGIN_H
#define KPOOL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KPOOL_PLUGIN_ABI_VERSION 1
#define KPOOL_REASON_MAX	 256

typedef enum { KPOOL_DONE = 0, KPOOL_RETRY = 1, KPOOL_FAIL = 2 } kpool_status;

struct kpool_header {
	const char *name;
	const void *value;
	size_t len;
};

struct kpool_option {
	const char *key;
	const char *value;
};

struct kpool_job {
	const char *topic;
	int32_t partition;
	int64_t offset;
	int64_t timestamp_ms;
	const void *key;
	size_t key_len;
	const void *value; /* the job, UTF-8 JSON */
	size_t value_len;
	const struct kpool_header *headers;
	size_t header_count;
	const char *event_id; /* never NULL */
	int attempt;	      /* 1 on the first call */
};

struct kpool_host { /* what the worker offers a plugin */
	const char *worker;
	int index;
	const char *state_dir;
	void (*log)(int level, const char *fmt, ...); /* syslog levels */
};

struct kpool_plugin {
	int abi_version;    /* KPOOL_PLUGIN_ABI_VERSION */
	size_t struct_size; /* sizeof(struct kpool_plugin) when built */
	const char *name, *version;
	void *(*init)(const struct kpool_host *host, const struct kpool_option *opts, size_t n_opts,
		      char *err, size_t err_len); /* NULL + err = refuse */
	kpool_status (*handle)(void *state, const struct kpool_job *job,
			       char reason[KPOOL_REASON_MAX]);
	void (*fini)(void *state);
	/* optional, may be NULL: handle jobs of one partition in order, in one go */
	void (*handle_batch)(void *state, const struct kpool_job *const *jobs, size_t n,
			     kpool_status *status, char (*reason)[KPOOL_REASON_MAX]);
};

extern const struct kpool_plugin kpool_plugin; /* the one symbol a plugin exports */

/*
 * Offered by kpoold, for a handler that knows when to try again (an HTTP
 * Retry-After, say): called during handle() or handle_batch() for a job it
 * answers KPOOL_RETRY, the next attempt waits at least ms, within the
 * binding's retry_backoff_max.  Weak, so that a plugin also loads where no
 * host offers it; then it is NULL:
 *     if (kpool_retry_after) kpool_retry_after(job, 30000);
 */
extern void kpool_retry_after(const struct kpool_job *job, int64_t ms) __attribute__((weak));

#define KPOOL_PLUGIN_HEADER                                                                        \
	.abi_version = KPOOL_PLUGIN_ABI_VERSION, .struct_size = sizeof(struct kpool_plugin)

#ifdef __cplusplus
}
#endif

#endif /* KPOOL_PLUGIN_H */
