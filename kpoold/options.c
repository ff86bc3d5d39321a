/*
 * options.c - the options a plugin declares (struct kpool_option_spec): its
 * table checked when it is loaded, a binding's keys checked against it and
 * handed to init() in their normal form (with the core's grammar,
 * kpcore/values.c), and the tables printed for kpoold --options and
 * kpool.conf(5).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpoold.h"

/* The smallest option spec we read: the first one's, up to max. */
#define MIN_SPEC_SIZE (offsetof(struct kpool_option_spec, max) + sizeof(int64_t))
/* More entries than this: the table's NULL name is missing. */
#define OPTIONS_MAX 256

/* Entry i of a plugin's option table, read with the stride it was built with. */
static const struct kpool_option_spec *spec_at(const struct kpool_plugin *p, size_t i)
{
	return (const struct kpool_option_spec *)((const char *)p->options + i * p->option_size);
}

/* The spec of a plugin's option key; NULL if it declares none by that name. */
static const struct kpool_option_spec *spec_find(const struct kpool_plugin *p, const char *key)
{
	for (size_t i = 0; spec_at(p, i)->name; i++)
		if (strcmp(spec_at(p, i)->name, key) == 0)
			return spec_at(p, i);
	return NULL;
}

/*
 * Checks a plugin's option table: its entry size, an end within
 * OPTIONS_MAX, known types, choices for an enum, and defaults its own types
 * take.  -1 with err naming the file and the entry if it is unusable.
 */
int kp_options_table_check(const struct kpool_plugin *p, const char *path, char *err, size_t len)
{
	char why[256], *norm;
	size_t i;

	if (p->option_size < MIN_SPEC_SIZE) {
		snprintf(err, len,
			 "%s: is not binary compatible (option_size %zu, at least %zu; set the "
			 "table with KPOOL_PLUGIN_OPTIONS())",
			 path, p->option_size, (size_t)MIN_SPEC_SIZE);
		return -1;
	}
	for (i = 0; i < OPTIONS_MAX && spec_at(p, i)->name; i++) {
		const struct kpool_option_spec *o = spec_at(p, i);

		if (o->type < KPOOL_OPT_STRING || o->type > KPOOL_OPT_ENUM ||
		    (o->type == KPOOL_OPT_ENUM && (o->choices == NULL || *o->choices == '\0'))) {
			snprintf(err, len, "%s: option %s: %s", path, o->name,
				 o->type == KPOOL_OPT_ENUM ? "an enum without choices"
							   : "unknown type");
			return -1;
		}
		if (o->def && kp_opt_normalize(o, o->def, "/", &norm, why, sizeof(why)) < 0) {
			snprintf(err, len, "%s: option %s: its default %s", path, o->name, why);
			return -1;
		}
		if (o->def)
			free(norm);
	}
	if (i == OPTIONS_MAX) {
		snprintf(err, len, "%s: its option table has no end (an entry with name NULL)",
			 path);
		return -1;
	}
	return 0;
}

/* Frees an option list kp_plugin_options() made; NULL is fine. */
void kp_plugin_options_free(struct kpool_option *o, size_t n)
{
	if (o == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free((char *)o[i].value);
	free(o);
}

/* Appends key = value (taken over) to an option list; -1 with err (value freed) if memory runs out.
 */
static int opt_add(struct kpool_option **o, size_t *n, const char *key, char *value, char *err,
		   size_t len)
{
	struct kpool_option *p = value ? realloc(*o, (*n + 1) * sizeof(*p)) : NULL;

	if (p == NULL) {
		free(value);
		snprintf(err, len, "out of memory");
		return -1;
	}
	*o = p;
	p[*n].key = key;
	p[*n].value = value;
	(*n)++;
	return 0;
}

/* The declared names, "a, b, c", into buf ("none" for an empty table). */
static void spec_names(const struct kpool_plugin *p, char *buf, size_t len)
{
	size_t n = 0;

	snprintf(buf, len, "none");
	for (size_t i = 0; spec_at(p, i)->name && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", spec_at(p, i)->name);
}

/* Refuses the first of binding b's keys that the plugin does not declare; -1 with err. */
static int undeclared(const struct kpool_plugin *p, const struct kp_conf *conf,
		      const struct kp_binding *b, char *err, size_t len)
{
	char names[512];

	for (size_t i = 0; i < b->n_opts; i++)
		if (spec_find(p, b->opts[i].key) == NULL) {
			spec_names(p, names, sizeof(names));
			snprintf(err, len,
				 "%s:%d: [worker:%s] %s: %s refused: unknown option '%s' (%s)",
				 conf->path, b->opts[i].line, b->name, b->opts[i].key, b->handler,
				 b->opts[i].key, names);
			return -1;
		}
	return 0;
}

/*
 * Appends to o what binding b gives for spec, normalized: every value of a
 * MULTI key in conf order, else the last (each one checked), else the
 * default.  -1 with err "FILE:LINE: [worker:NAME] KEY: message" if a value
 * does not fit or a required key is missing; what was appended stays.
 */
static int spec_values(const struct kpool_option_spec *spec, const struct kp_conf *conf,
		       const struct kp_binding *b, struct kpool_option **o, size_t *n, char *err,
		       size_t len)
{
	bool multi = spec->flags & KPOOL_OPT_MULTI, set = false;
	char why[512], *v;

	for (size_t i = 0; i < b->n_opts; i++) {
		const struct kp_kv *kv = &b->opts[i];

		if (strcmp(kv->key, spec->name) != 0)
			continue;
		if (kp_opt_normalize(spec, kv->value, conf->dir, &v, why, sizeof(why)) < 0) {
			snprintf(err, len, "%s:%d: [worker:%s] %s: %s", conf->path, kv->line,
				 b->name, kv->key, why);
			return -1;
		}
		if (set && !multi) { /* this spec's value is the list's last */
			free((char *)(*o)[*n - 1].value);
			(*o)[*n - 1].value = v;
		} else if (opt_add(o, n, spec->name, v, err, len) < 0) {
			return -1;
		}
		set = true;
	}
	if (set)
		return 0;
	if (spec->flags & KPOOL_OPT_REQUIRED) {
		snprintf(err, len, "%s:%d: [worker:%s] %s: missing (%s needs it: %s)", conf->path,
			 b->line, b->name, spec->name, b->handler, spec->desc ? spec->desc : "");
		return -1;
	}
	if (spec->def == NULL)
		return 0;
	/* The default was checked when the plugin was loaded. */
	if (kp_opt_normalize(spec, spec->def, conf->dir, &v, why, sizeof(why)) < 0) {
		snprintf(err, len, "%s:%d: [worker:%s] %s: the default %s", conf->path, b->line,
			 b->name, spec->name, why);
		return -1;
	}
	return opt_add(o, n, spec->name, v, err, len);
}

/*
 * The options init() gets for binding b: for a plugin without a table, the
 * binding's keys as written; for one with a table, every key checked against
 * it, defaults added, and values in their normal form, in the table's order.
 * Returns 0 with *out (free with kp_plugin_options_free()), or -1 with err
 * "FILE:LINE: [worker:NAME] KEY: message" and nothing allocated.
 */
int kp_plugin_options(const struct kp_plugin *pl, const struct kp_conf *conf,
		      const struct kp_binding *b, struct kpool_option **out, size_t *n_out,
		      char *err, size_t len)
{
	const struct kpool_plugin *p = &pl->p;
	struct kpool_option *o = NULL;
	size_t n = 0;

	*out = NULL;
	*n_out = 0;
	if (p->options == NULL) {
		for (size_t i = 0; i < b->n_opts; i++)
			if (opt_add(&o, &n, b->opts[i].key, strdup(b->opts[i].value), err, len) < 0)
				goto fail;
	} else {
		if (undeclared(p, conf, b, err, len) < 0)
			goto fail;
		for (size_t s = 0; spec_at(p, s)->name; s++)
			if (spec_values(spec_at(p, s), conf, b, &o, &n, err, len) < 0)
				goto fail;
	}
	*out = o;
	*n_out = n;
	return 0;
fail:
	kp_plugin_options_free(o, n);
	return -1;
}

/* Writes text for a man page line: backslashes as \e, a leading . or ' made inert. */
static void man_text(const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", stdout);
	for (; *s; s++)
		if (*s == '\\')
			fputs("\\e", stdout);
		else
			putchar(*s);
}

/*
 * Writes an option's description as a man page sentence: a first word of
 * plain lower-case letters capitalized (not "smtp://..." or a key), a full
 * stop at the end.
 */
static void man_sentence(char *s)
{
	size_t word = strcspn(s, " "), n = strlen(s);

	if (islower((unsigned char)*s) && strcspn(s, ":/._") >= word)
		*s = (char)toupper((unsigned char)*s);
	man_text(s);
	puts(n > 0 && s[n - 1] == '.' ? "" : ".");
}

/* What a spec's choices and flags add to its description: " (a, b, c) (required)". */
static void spec_notes(const struct kpool_option_spec *o, char *buf, size_t len)
{
	char choices[256];
	size_t n = 0, k = 0;

	buf[0] = '\0';
	if (o->type == KPOOL_OPT_ENUM) {
		const char *last = strrchr(o->choices, '|');

		for (const char *c = o->choices; *c && k + 5 < sizeof(choices); c++)
			if (*c == '|')
				k += (size_t)snprintf(choices + k, sizeof(choices) - k,
						      c == last ? " or " : ", ");
			else
				choices[k++] = *c;
		choices[k] = '\0';
		n = (size_t)snprintf(buf, len, " (one of %s)", choices);
	}
	if (o->type == KPOOL_OPT_INT && o->max > 0)
		n = (size_t)snprintf(buf, len, " (%" PRId64 " to %" PRId64 ")", o->min, o->max);
	if ((o->flags & KPOOL_OPT_REQUIRED) && n < len)
		n += (size_t)snprintf(buf + n, len - n, " (required)");
	if ((o->flags & KPOOL_OPT_MULTI) && n < len)
		snprintf(buf + n, len - n, " (repeatable)");
}

/* Prints one plugin's table: as --options lines, or as man markup (.SS, then .TP per option). */
static void print_table(const struct kp_plugin *pl, const char *handler, bool man)
{
	const struct kpool_plugin *p = &pl->p;
	char notes[300], desc[1024];

	if (man) {
		printf(".SS %s\n", handler);
		for (size_t i = 0; spec_at(p, i)->name; i++) {
			const struct kpool_option_spec *o = spec_at(p, i);

			spec_notes(o, notes, sizeof(notes));
			printf(".TP\n");
			if (o->def) {
				printf(".B \"%s = ", o->name);
				man_text(o->def);
				printf("\"\n");
			} else {
				printf(".B %s\n", o->name);
			}
			snprintf(desc, sizeof(desc), "%s%s", o->desc ? o->desc : "", notes);
			man_sentence(desc[0] == ' ' ? desc + 1 : desc);
		}
		return;
	}
	printf("\n[worker:NAME] handler = %s  (%s %s, %s)\n", handler, p->name,
	       p->version ? p->version : "", pl->path);
	if (p->options == NULL) {
		printf("  (no option table: init() reads the other keys as they are written)\n");
		return;
	}
	for (size_t i = 0; spec_at(p, i)->name; i++) {
		const struct kpool_option_spec *o = spec_at(p, i);

		spec_notes(o, notes, sizeof(notes));
		snprintf(desc, sizeof(desc), "%s%s", o->desc ? o->desc : "", notes);
		kp_conf_print_option(o->name, o->def ? o->def : "-", desc);
	}
}

/* scandir()'s filter: the NAME.so files of a directory. */
static int is_plugin_file(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 3 && strcmp(d->d_name + n - 3, ".so") == 0;
}

/*
 * Prints the option tables of the plugins in plugin_dir (of handler alone,
 * unless NULL), by name, for kpoold --options or, with man, as kpool.conf(5)
 * markup (plugins without a table are left out of it).  A plugin that cannot
 * be loaded is named on stderr and the others are printed: -1 then.
 */
int kp_plugin_print_options(const char *plugin_dir, const char *handler, bool man)
{
	struct dirent **names = NULL;
	char path[PATH_MAX], err[1024], name[NAME_MAX + 1];
	int n, rc = 0;

	if (handler) {
		n = 1;
	} else if ((n = scandir(plugin_dir, &names, is_plugin_file, alphasort)) < 0) {
		fprintf(stderr, "kpoold: %s: %s\n", plugin_dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct kp_plugin pl;

		if (handler)
			snprintf(name, sizeof(name), "%s", handler);
		else
			snprintf(name, sizeof(name), "%.*s", (int)strlen(names[i]->d_name) - 3,
				 names[i]->d_name);
		snprintf(path, sizeof(path), "%s/%s.so", plugin_dir, name);
		if (kp_plugin_open(&pl, path, err, sizeof(err)) < 0) {
			fprintf(stderr, "kpoold: %s\n", err);
			rc = -1;
		} else {
			if (!man || pl.p.options)
				print_table(&pl, name, man);
			kp_plugin_close(&pl);
		}
		if (names)
			free(names[i]);
	}
	free(names);
	return rc;
}
