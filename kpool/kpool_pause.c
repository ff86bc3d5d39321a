/*
 * kpool_pause.c - `kpool pause NAME` and `kpool resume NAME`: a binding's
 * workers stop fetching (its jobs wait in Kafka, its group keeps its
 * partitions) until it is resumed.  The state is a file in state_dir
 * (kpcore/pause.c), so it works while kpoold is down and applies when it
 * starts; a running kpoold picks it up within a second.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "core.h"
#include "kpool_cmd.h"

/*
 * kpool pause|resume NAME: 0 when done (or already so), 1 when the state
 * could not be written (said), 2 on a usage error or an unknown binding.
 */
int kp_cmd_pause(const struct kp_conf *conf, int argc, char **argv)
{
	bool pause = strcmp(argv[0], "pause") == 0, was;
	char err[512], since[40];
	int64_t since_ms = 0;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: kpool -c CONF %s NAME\n", argv[0]);
		return 2;
	}
	if (kp_conf_binding(conf, argv[1]) == NULL) {
		fprintf(stderr, "kpool: %s: no binding '", argv[0]);
		kp_text_put(stderr, argv[1], strlen(argv[1]), 0);
		fprintf(stderr, "' in %s\n", conf->path);
		return 2;
	}
	was = kp_pause_get(conf, argv[1], &since_ms);
	if (kp_pause_set(conf, argv[1], pause, err, sizeof(err)) < 0) {
		fprintf(stderr, "kpool: %s %s: %s\n", argv[0], argv[1], err);
		return 1;
	}
	if (pause && was) {
		kp_cmd_iso(since_ms, since, sizeof(since));
		printf("%s: paused already, since %s\n", argv[1], since);
	} else if (pause) {
		printf("%s: paused\n", argv[1]);
	} else {
		printf("%s: %s\n", argv[1], was ? "resumed" : "not paused");
	}
	return 0;
}
