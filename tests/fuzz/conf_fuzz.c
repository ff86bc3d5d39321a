/*
 * conf_fuzz.c - libFuzzer harness for the conf parser (conf.c:
 * kp_conf_load): the bytes of a kpool.conf.  A conf is accepted, or refused
 * with one line that begins with the file's name (and, from the parser, its
 * line); never a crash, a leak or a read out of bounds.  An accepted conf's
 * bindings are checked for what the rest of kpoold relies on.
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
	}
	kp_conf_free(c);
	return 0;
}
