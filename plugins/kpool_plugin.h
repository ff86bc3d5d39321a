/*
 * kpool_plugin.h - the ABI between kpoold and a job handler plugin.
 *
 * This is the only header a plugin includes.  A plugin is a shared object
 * dropped into plugin_dir as NAME.so that exports exactly one symbol,
 * kpool_plugin, written as
 *
 *	static const struct kpool_option_spec probe_options[] = {
 *		{.name = "out", .type = KPOOL_OPT_PATH, .flags = KPOOL_OPT_REQUIRED,
 *		 .desc = "the file each job is appended to"},
 *		{.name = NULL},
 *	};
 *	const struct kpool_plugin kpool_plugin = {
 *		KPOOL_PLUGIN_HEADER,
 *		.name = "probe", .version = "1.0",
 *		.init = probe_init, .handle = probe_handle, .fini = probe_fini,
 *		KPOOL_PLUGIN_OPTIONS(probe_options),
 *	};
 *
 * Structs only grow at their ends, each with a size field saying how much of
 * it the other side was built with (as SQLite's sqlite3_api_routines does):
 * kpoold treats a plugin's fields past its struct_size as absent, and a
 * plugin tests the host's with KPOOL_HOST_HAS() before it reads a field
 * added after the first.  So a plugin built against an older header keeps
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

/*
 * What the worker offers a plugin.  The fields from struct_size on came
 * later than the first four: a plugin that reads them needs a kpoold that
 * offers them, one built with this header or a later one (an older kpoold's
 * struct ends at log, so its struct_size cannot be asked either).  Fields
 * added after these are tested with KPOOL_HOST_HAS(host, FIELD) before use.
 * A kpoold that offers conf_dir also reads option tables, so a plugin that
 * declares one gets its options checked and normalized.
 */
struct kpool_host {
	const char *worker;
	int index; /* -1 in the check kpoold runs at start and reload */
	const char *state_dir;
	void (*log)(int level, const char *fmt, ...); /* syslog levels */
	size_t struct_size; /* sizeof(struct kpool_host) of the kpoold offering it */
	/*
	 * For a handler that knows when to try again (an HTTP Retry-After,
	 * say): called during handle() or handle_batch() for a job it answers
	 * KPOOL_RETRY, the next attempt waits at least ms, within the binding's
	 * retry_backoff_max.
	 */
	void (*retry_after)(const struct kpool_job *job, int64_t ms);
	const char *conf_dir; /* the conf file's directory, absolute */
};

/* Whether host offers field: it was built with a struct that reaches past it. */
#define KPOOL_HOST_HAS(host, field)                                                                \
	((host)->struct_size >= offsetof(struct kpool_host, field) + sizeof((host)->field))

/*
 * The type of a declared option: how kpoold checks a value, and the form in
 * which init() receives it.  The grammar is kpoold's own, the one its core
 * keys use (kpool.conf(5)).
 */
enum kpool_option_type {
	KPOOL_OPT_STRING = 0, /* any text, as written */
	KPOOL_OPT_INT,	      /* a whole number within min..max, in decimal: "+08" -> "8" */
	KPOOL_OPT_BOOL,	      /* on/off, yes/no, true/false, 1/0 -> "true" or "false" */
	KPOOL_OPT_DURATION,   /* 250ms, 1.5s, 30 (seconds), 5m, 2h, 7d -> milliseconds: "1500" */
	KPOOL_OPT_SIZE,	      /* 512, 512B, 64KiB, 1MiB, 2GiB -> bytes: "65536" */
	KPOOL_OPT_PATH,	      /* a file or directory -> absolute, a relative one from conf_dir */
	KPOOL_OPT_ENUM,	      /* one of choices, as written */
};

#define KPOOL_OPT_REQUIRED 0x1u /* kpoold refuses a binding that does not set it */
#define KPOOL_OPT_MULTI	   0x2u /* may be given more than once: init() gets each, in conf order */

/*
 * One option a plugin declares.  Where a plugin declares a table, kpoold
 * refuses the binding's keys that are not in it, and values its type does
 * not take, naming the conf file, line and key; it adds the defaults of the
 * keys not set, and hands init() every value in the normal form of its type
 * (above), in the table's order.  A key set twice keeps its last value,
 * unless it is KPOOL_OPT_MULTI.  kpoold --options and kpool.conf(5) list the
 * table.  The array ends with an entry whose name is NULL.
 */
struct kpool_option_spec {
	const char *name; /* the key in [worker:NAME]; NULL ends the table */
	int type;	  /* enum kpool_option_type */
	const char *def;  /* the default, as written in a conf; NULL: none, init() gets no entry */
	const char *desc; /* one line for kpoold --options and kpool.conf(5) */
	unsigned flags;	  /* KPOOL_OPT_REQUIRED, KPOOL_OPT_MULTI */
	const char *choices; /* KPOOL_OPT_ENUM: the values it takes, separated by '|': "job|data" */
	int64_t min, max; /* INT, DURATION (ms), SIZE (bytes): the range; max 0: no upper bound */
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
	/* optional, may be NULL: the options it takes; set both with KPOOL_PLUGIN_OPTIONS() */
	const struct kpool_option_spec *options;
	size_t option_size; /* sizeof(struct kpool_option_spec) when built */
};

extern const struct kpool_plugin kpool_plugin; /* the one symbol a plugin exports */

#define KPOOL_PLUGIN_HEADER                                                                        \
	.abi_version = KPOOL_PLUGIN_ABI_VERSION, .struct_size = sizeof(struct kpool_plugin)

#define KPOOL_PLUGIN_OPTIONS(table)                                                                \
	.options = (table), .option_size = sizeof(struct kpool_option_spec)

#ifdef __cplusplus
}
#endif

#endif /* KPOOL_PLUGIN_H */
