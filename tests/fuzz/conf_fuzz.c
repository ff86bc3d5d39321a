/*
 * conf_fuzz.c - libFuzzer harness for the conf parser (conf.c:
 * kp_conf_load): the bytes of a kpool.conf.  A conf is accepted, or refused
 * with one line that begins with the file's name (and, from the parser, its
 * line); never a crash, a leak or a read out of bounds.  An accepted conf's
 * bindings are checked for what the rest of kpoold relies on, and each of
 * their handler options is read as every type a plugin may declare
 * (kp_opt_normalize): taken in its normal form or refused with a reason.
 *
 * Built with clang -fsanitize=fuzzer by scripts/fuzz; built with replay.c
 * by make check, which replays corpus/conf.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core.h"

/* A handler's value read as each type: a normal form or a reason, never both, never neither. */
static void normalize_all(const char *value, const char *dir)
{
	static const struct kpool_option_spec specs[] = {
	    {.name = "s", .type = KPOOL_OPT_STRING},
	    {.name = "i", .type = KPOOL_OPT_INT, .min = -5, .max = 1000},
	    {.name = "j", .type = KPOOL_OPT_INT, .min = INT64_MIN},
	    {.name = "b", .type = KPOOL_OPT_BOOL},
	    {.name = "d", .type = KPOOL_OPT_DURATION, .min = 1, .max = 86400000},
	    {.name = "z", .type = KPOOL_OPT_SIZE, .max = 1 << 20},
	    {.name = "p", .type = KPOOL_OPT_PATH},
	    {.name = "e", .type = KPOOL_OPT_ENUM, .choices = "job|data|x"},
	};

	for (size_t k = 0; k < sizeof(specs) / sizeof(specs[0]); k++) {
		char err[256] = "", *out = NULL;
		int rc = kp_opt_normalize(&specs[k], value, dir, &out, err, sizeof(err));

		if ((rc == 0) != (out != NULL) || (rc < 0 && err[0] == '\0')) {
			fprintf(stderr, "option %s = '%s': rc %d, out %s, err '%s'\n",
				specs[k].name, value, rc, out ? out : "NULL", err);
			abort();
		}
		free(out);
	}
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	char err[1024] = "";
	struct kp_conf *c;

	if (fd < 0) {
		fd = memfd_create("kpool.conf", 0);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	c = kp_conf_load(path, err, sizeof(err));
	if (c == NULL) {
		if (strncmp(err, path, strlen(path)) != 0 || strchr(err, '\n') != NULL) {
			fprintf(stderr, "conf says: '%s'\n", err);
			abort();
		}
		return 0;
	}
	for (size_t i = 0; i < c->n_bindings; i++) {
		const struct kp_binding *b = &c->bindings[i];
		if (b->n_topics < 1 || b->n_topics > KP_TOPICS_MAX || b->n_idkeys < 1 ||
		    b->n_idkeys > KP_IDKEYS_MAX || b->handler == NULL || b->processes < 1) {
			fprintf(stderr, "conf says: binding %s accepted out of bounds\n", b->name);
			abort();
		}
		for (size_t k = 0; k < b->n_opts; k++)
			normalize_all(b->opts[k].value, c->dir);
	}
	kp_conf_free(c);
	return 0;
}
