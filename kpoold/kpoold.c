/*
 * kpoold.c - main(): options, the conf and every plugin checked, then the
 * supervisor takes over.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpoold.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: kpoold -c CONF [-t]\n"
		   "       kpoold --options\n"
		   "  -c, --conf CONF   the conf file (kpool.conf(5))\n"
		   "  -t, --test        check the conf and every plugin, then exit 0 or 1\n"
		   "      --options     list the [pool] and [worker:NAME] keys with defaults\n"
		   "  -V, --version     print the version\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"conf", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 't'},
	    {"options", no_argument, NULL, 'O'},    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},	    {NULL, 0, NULL, 0}};
	const char *path = NULL;
	bool test = false;
	char err[1024];
	struct kp_conf *conf;
	int c, rc;

	while ((c = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test = true;
			break;
		case 'O':
			kp_conf_print_options();
			return 0;
		case 'V':
			printf("kpoold %s (plugin ABI %d)\n", PACKAGE_VERSION,
			       KPOOL_PLUGIN_ABI_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	conf = kp_conf_load(path, err, sizeof(err));
	if (conf == NULL) {
		fprintf(stderr, "kpoold: %s\n", err);
		return 1;
	}
	kp_log_level = conf->log_level;
	for (size_t i = 0; i < conf->n_bindings; i++)
		if (kp_plugin_check(conf, &conf->bindings[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "kpoold: %s\n", err);
			kp_conf_free(conf);
			return 1;
		}
	if (test) {
		printf("kpoold: %s: ok (%zu workers)\n", path, conf->n_bindings);
		kp_conf_free(conf);
		return 0;
	}
	kp_proctitle_init(argc, argv);
	rc = kp_supervisor_run(conf); /* frees conf */
	return rc;
}
