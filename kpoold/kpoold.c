/*
 * kpoold.c - main(): options, the conf and every plugin checked, then the
 * supervisor takes over.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"
#include "kpoold.h"

/* kpoold's usage, to f. */
static void usage(FILE *f)
{
	fprintf(f,
		"usage: kpoold -c CONF [-t]\n"
		"       kpoold --options [-c CONF] [--man] [HANDLER]\n"
		"  -c, --conf CONF   the conf file (kpool.conf(5))\n"
		"  -t, --test        check the conf and every plugin, then exit 0 or 1\n"
		"      --options     list the [pool] and [worker:NAME] keys with defaults, then\n"
		"                    the options of each handler in plugin_dir (of HANDLER alone)\n"
		"      --man         the handlers' options as kpool.conf(5) markup\n"
		"  -V, --version     print the version\n");
}

/*
 * kpoold --options: the core's keys (unless for one handler, or as man
 * markup), then the handlers' tables from the conf's plugin_dir, or the
 * default one.  Returns the exit status: 1 if a plugin or the conf could
 * not be read (what could be is printed).
 */
static int print_options(const char *path, const char *handler, bool man)
{
	struct kp_conf *conf = NULL;
	char err[1024], *dir;
	int rc;

	if (path && (conf = kp_conf_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "kpoold: %s\n", err);
		return 1;
	}
	dir = conf ? strdup(conf->plugin_dir) : kp_conf_default_plugin_dir();
	kp_conf_free(conf);
	if (dir == NULL) {
		fprintf(stderr, "kpoold: out of memory\n");
		return 1;
	}
	if (handler == NULL && !man)
		kp_conf_print_options();
	fflush(stdout);
	rc = kp_plugin_print_options(dir, handler, man) < 0 ? 1 : 0;
	free(dir);
	return rc;
}

/*
 * Options, the conf and every plugin checked, then the supervisor runs the
 * pool; exit 0, 1 on failure, 2 on bad usage.
 */
int main(int argc, char **argv)
{
	static const struct option longopts[] = {{"conf", required_argument, NULL, 'c'},
						 {"test", no_argument, NULL, 't'},
						 {"options", no_argument, NULL, 'O'},
						 {"man", no_argument, NULL, 'M'},
						 {"version", no_argument, NULL, 'V'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	const char *path = NULL;
	bool test = false, options = false, man = false;
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
			options = true;
			break;
		case 'M':
			man = true;
			break;
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
	if (options || man) {
		if (!options || argc - optind > 1) {
			usage(stderr);
			return 2;
		}
		return print_options(path, optind < argc ? argv[optind] : NULL, man);
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
	if (kp_console_check(conf, err, sizeof(err)) < 0) {
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
