/*
 * supervisor.h - the supervisor's tables, shared by its files and read by
 * metrics.c: the bindings it runs (a state per conf generation of a
 * binding), their ledger processes, the embedded broker, the web console,
 * the conf generations in use, and its children by kind.
 *
 *   supervisor.c     the loop: signals, systemd, /healthz, stop
 *   spawn.c          children: fork, reap, restart with throttle; the broker
 *   spawn_console.c  the web console's process
 *   reload.c         SIGHUP: conf generations, what stays, starts and drains
 *   control.c        the operator's asks: a binding paused, a worker restarted
 */
#ifndef KP_SUPERVISOR_H
#define KP_SUPERVISOR_H

#include "kpoold.h"

struct kp_binding_state;
struct kp_ledger_proc { /* a binding's ledger: its memory and its process */
	char name[KP_NAME_MAX];
	struct kp_ledger_shm *shm;
	struct kp_binding_state *bs; /* the newest binding state that uses it */
	int refs;		     /* binding states that use it */
	pid_t pid;
	int64_t due_ms; /* when to start its process (again), 0 if not waiting */
	int64_t backoff_ms;
	int64_t spawned_ms;
	int64_t kill_at_ms; /* stopping: SIGKILL after this */
};
struct kp_binding_state {
	struct kp_ledger_proc *lp;
	struct kp_conf *conf; /* the conf generation b belongs to */
	const struct kp_binding *b;
	char *sig;		 /* what makes it "the same binding" across a reload */
	struct kp_slot **slots;	 /* b->processes of them, in the shared pool */
	int64_t *due_ms;	 /* per slot: when to start it again, 0 if not waiting */
	int64_t *spawned_ms;	 /* per slot: when its process was started */
	uint64_t *jobs_at_spawn; /* per slot: results counted when it started */
	int64_t *restart_by;	 /* per slot: stopping to restart on request: SIGKILL after, or 0 */
	int64_t backoff_ms;
	int64_t drain_deadline; /* when draining: SIGKILL after this */
	uint64_t restarts;
	bool draining;	/* removed or replaced by a reload: stops, never restarts */
	bool throttled; /* a worker died before handling any job */
	bool paused;	/* the operator paused the binding: its slots' pause_want */
};
/* A child process of the supervisor, by kind; reap() finds it by pid. */
enum kp_child_kind { KP_CHILD_WORKER, KP_CHILD_LEDGER, KP_CHILD_BROKER, KP_CHILD_CONSOLE };
struct kp_child {
	pid_t pid;
	enum kp_child_kind kind;
	struct kp_binding_state *bs; /* a worker: its binding ... */
	int k;			     /* ... and its index there */
	struct kp_ledger_proc *lp;   /* a ledger process */
};
/* Workers, a ledger each at most, a broker, the console. */
#define KP_CHILDREN_MAX (2 * KP_SLOTS_MAX + 2)

struct kp_broker { /* the embedded broker */
	pid_t pid;
	bool up;	     /* its address is written: workers may start */
	int64_t due_ms;	     /* when to start it (again), 0 if not waiting */
	int64_t ready_by_ms; /* started: killed if its address is not written by then */
	int64_t backoff_ms;
	uint64_t starts;
};

struct kp_console_proc { /* the web console's process, while [console] listen is set */
	pid_t pid;
	bool again;	    /* stopped by a reload: started again as soon as it is gone */
	int64_t due_ms;	    /* when to start it (again), 0 if not waiting */
	int64_t backoff_ms; /* the wait after the next failure */
	int64_t spawned_ms;
	int64_t kill_at_ms; /* asked to stop: SIGKILL after this, else 0 */
};

struct kp_conf_ref { /* a conf generation and the binding states that use it */
	struct kp_conf *conf;
	int refs;
};

struct kp_supervisor {
	struct kp_conf *conf;	      /* the current generation */
	struct kp_binding_state **bs; /* current and draining bindings */
	size_t n_bs;
	struct kp_slot *slots;			      /* KP_SLOTS_MAX of them */
	struct kp_binding_state *owner[KP_SLOTS_MAX]; /* which binding a slot serves now */
	struct kp_ledger_proc **ledgers;
	size_t n_ledgers;
	struct kp_broker broker;
	struct kp_console_proc console;
	int64_t control_due_ms; /* when control.c looks at pauses and restart requests again */
	struct kp_child children[KP_CHILDREN_MAX];
	size_t n_children;
	struct kp_conf_ref *confs;
	size_t n_confs;
};

/* supervisor.c */
void kp_sv_child_setup(void);
void kp_sv_notify(const struct kp_supervisor *sv, const char *extra);
int kp_health(const struct kp_supervisor *sv, char **json);

/* spawn.c */
void kp_child_add(struct kp_supervisor *sv, const struct kp_child *c);
struct kp_binding_state *kp_spawn_binding(struct kp_supervisor *sv, struct kp_conf *conf,
					  const struct kp_binding *b, char *sig);
void kp_spawn_drain(struct kp_binding_state *bs, const char *why);
void kp_spawn_stop_all(struct kp_supervisor *sv, int64_t deadline);
void kp_spawn_reap(struct kp_supervisor *sv, bool stopping);
void kp_spawn_cleanup(struct kp_supervisor *sv, int *killed);
int64_t kp_spawn_due(struct kp_supervisor *sv);
int kp_spawn_workers_alive(const struct kp_supervisor *sv);
int kp_spawn_ledgers_alive(const struct kp_supervisor *sv);
int kp_spawn_broker_first(struct kp_supervisor *sv);
int64_t kp_spawn_broker_poll(struct kp_supervisor *sv);
void kp_spawn_kill_all(struct kp_supervisor *sv);

/* rate.c */
void kp_rate_share(struct kp_supervisor *sv);

/* spawn_console.c */
void kp_spawn_console_start(struct kp_supervisor *sv);
void kp_spawn_console_reload(struct kp_supervisor *sv);
void kp_spawn_console_died(struct kp_supervisor *sv, int status, bool stopping);
int64_t kp_spawn_console_due(struct kp_supervisor *sv, int64_t max);
void kp_spawn_console_stop(struct kp_supervisor *sv, int64_t deadline);
void kp_spawn_console_cleanup(struct kp_supervisor *sv);
void kp_spawn_console_kill(struct kp_supervisor *sv);

/* control.c */
int64_t kp_control_poll(struct kp_supervisor *sv);

/* reload.c */
void kp_conf_hold(struct kp_supervisor *sv, struct kp_conf *conf);
void kp_conf_release(struct kp_supervisor *sv, struct kp_conf *conf);
char *kp_binding_sig(const struct kp_conf *conf, const struct kp_binding *b);
void kp_reload(struct kp_supervisor *sv);
int kp_health(const struct kp_supervisor *sv, char **json);

#endif /* KP_SUPERVISOR_H */
