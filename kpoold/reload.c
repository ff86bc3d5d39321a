/*
 * reload.c - SIGHUP and the conf generations it makes.  A binding state
 * holds the generation its binding came from, so a reload frees an old
 * conf only when its last draining worker is gone.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <systemd/sd-daemon.h>

#include "supervisor.h"

/* One more binding state (or the supervisor itself) uses conf.  Aborts when memory runs out. */
void kp_conf_hold(struct kp_supervisor *sv, struct kp_conf *conf)
{
	struct kp_conf_ref *grown;

	for (size_t i = 0; i < sv->n_confs; i++)
		if (sv->confs[i].conf == conf) {
			sv->confs[i].refs++;
			return;
		}
	grown = realloc(sv->confs, (sv->n_confs + 1) * sizeof(*sv->confs));
	if (grown == NULL)
		abort(); /* a handful of bytes: nothing sensible is left to do */
	sv->confs = grown;
	sv->confs[sv->n_confs++] = (struct kp_conf_ref){.conf = conf, .refs = 1};
}

/* One user of conf fewer; the last frees it.  A conf never held is left alone. */
void kp_conf_release(struct kp_supervisor *sv, struct kp_conf *conf)
{
	for (size_t i = 0; conf && i < sv->n_confs; i++) {
		if (sv->confs[i].conf != conf)
			continue;
		if (--sv->confs[i].refs == 0) {
			kp_conf_free(conf);
			sv->confs[i] = sv->confs[--sv->n_confs];
			if (sv->n_confs == 0) {
				free(sv->confs);
				sv->confs = NULL;
			}
		}
		return;
	}
}

/* What makes two bindings the same across a reload: every key, and the plugin's bytes. */
char *kp_binding_sig(const struct kp_conf *conf, const struct kp_binding *b)
{
	char *buf = NULL, path[PATH_MAX];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len), *so;
	uint64_t h = 1469598103934665603ull; /* FNV-1a 64 of the plugin file */
	int c;

	if (f == NULL)
		return NULL;
	fprintf(f, "%s|%s|%s|%d|%s|%s|%d|%lld|%lld|%d|%lld|%d|%s|%lld|%s|%s", b->name,
		b->topic_list, b->handler, b->processes, b->group,
		b->dead_letter_topic ? b->dead_letter_topic : "", b->max_attempts,
		(long long)b->retry_backoff_ms, (long long)b->retry_backoff_max_ms, b->max_crashes,
		(long long)b->max_job_bytes, b->idempotency, b->idempotency_key,
		(long long)b->idempotency_ttl_ms, b->ledger, b->ledger_topic);
	for (size_t i = 0; i < b->n_opts; i++)
		fprintf(f, "|%s=%s", b->opts[i].key, b->opts[i].value);
	for (size_t i = 0; i < conf->n_kafka; i++)
		fprintf(f, "|kafka.%s=%s", conf->kafka[i].key, conf->kafka[i].value);
	fprintf(f, "|%s|%s|%d", conf->plugin_dir, conf->state_dir, conf->log_level);
	if (kp_plugin_path(conf, b->handler, path, sizeof(path)) == 0 && (so = fopen(path, "rb"))) {
		while ((c = getc(so)) != EOF)
			h = (h ^ (uint64_t)c) * 1099511628211ull;
		fclose(so);
	}
	fprintf(f, "|plugin=%016llx", (unsigned long long)h);
	fclose(f);
	return buf;
}

/*
 * SIGHUP, like nginx: a new conf that checks out replaces the old one.
 * Bindings that are new start; removed ones drain; changed ones (any key, or
 * their plugin's bytes) start new workers before the old ones drain; the
 * others keep their processes.  The web console starts anew on the new
 * conf.  An invalid conf is logged and ignored.
 */
void kp_reload(struct kp_supervisor *sv)
{
	struct kp_conf *old = sv->conf, *conf;
	char err[1024];
	size_t n_old = sv->n_bs;

	sd_notify(0, "RELOADING=1\nSTATUS=reloading");
	kp_log(KP_NOTICE, "SIGHUP: reloading %s", old->path);
	conf = kp_conf_load(old->path, err, sizeof(err));
	for (size_t i = 0; conf && i < conf->n_bindings; i++)
		if (kp_plugin_check(conf, &conf->bindings[i], err, sizeof(err)) < 0) {
			kp_conf_free(conf);
			conf = NULL;
		}
	if (conf == NULL) {
		kp_log(KP_ERROR, "reload refused, keeping the running conf: %s", err);
		kp_sv_notify(sv, "READY=1\n");
		return;
	}
	if (strcmp(conf->state_dir, old->state_dir) != 0 ||
	    strcmp(conf->metrics_listen, old->metrics_listen) != 0 ||
	    conf->embedded != old->embedded ||
	    strcmp(conf->user ? conf->user : "", old->user ? old->user : "") != 0)
		kp_log(KP_WARNING, "reload: state_dir, metrics_listen, user and an embedded broker "
				   "change only with a restart; the running ones stay");
	kp_log_level = conf->log_level;
	kp_conf_hold(sv, conf); /* held by sv->conf */
	for (size_t i = 0; i < conf->n_bindings; i++) {
		const struct kp_binding *b = &conf->bindings[i];
		char *sig = kp_binding_sig(conf, b);
		struct kp_binding_state *same = NULL;

		for (size_t j = 0; j < n_old; j++) {
			struct kp_binding_state *bs = sv->bs[j];
			if (!bs->draining && strcmp(bs->b->name, b->name) == 0) {
				same = bs;
				break;
			}
		}
		if (same && sig && strcmp(same->sig, sig) == 0) { /* untouched: keep it running */
			kp_conf_release(sv, same->conf);
			same->conf = conf;
			same->b = b;
			kp_conf_hold(sv, conf);
			free(sig);
			/* and have its plugin read its files (templates, secrets) again */
			for (int k = 0; k < same->b->processes; k++)
				if (same->slots[k] && same->slots[k]->pid > 0)
					kill(same->slots[k]->pid, SIGHUP);
			continue;
		}
		kp_log(KP_NOTICE, "worker=%s %s", b->name,
		       same ? "changed: starting new workers" : "added");
		if (kp_spawn_binding(sv, conf, b, sig) == NULL)
			continue;
		if (same)
			kp_spawn_drain(same, "replaced by a reload");
	}
	for (size_t j = 0; j < n_old; j++) {
		struct kp_binding_state *bs = sv->bs[j];
		if (!bs->draining && bs->conf != conf && !kp_conf_binding(conf, bs->b->name))
			kp_spawn_drain(bs, "removed from the conf");
	}
	sv->conf = conf;
	kp_conf_release(sv, old);
	kp_spawn_console_reload(sv); /* on the new conf, or gone with [console] */
	kp_sv_notify(sv, "READY=1\n");
	kp_log(KP_NOTICE, "reloaded: %zu bindings", conf->n_bindings);
}
