/*
 * spawn_console.c - the web console's process as the supervisor runs it
 * (what it serves is console/'s): started while [console] listen is set,
 * after root is dropped, like every other child; started again after a
 * back-off (1 s doubling to 60 s, reset after 60 s up) when it dies, so that
 * a console that cannot listen does not spin; stopped and started anew at a
 * reload, with the new conf; stopped with the rest.  It needs no embedded
 * broker to start, and its state never makes kpoold unhealthy.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "console.h"
#include "supervisor.h"

/* Forks the console on the current conf; on fork failure it is tried again after its back-off. */
static void console_spawn(struct kp_supervisor *sv)
{
	struct kp_console_proc *c = &sv->console;
	pid_t pid;

	c->due_ms = 0;
	c->kill_at_ms = 0;
	pid = fork();
	if (pid < 0) {
		kp_log(KP_ERROR, "console: fork: %s", strerror(errno));
		c->due_ms = kp_mono_ms() + c->backoff_ms;
		return;
	}
	if (pid == 0) {
		kp_sv_child_setup();
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* a supervisor gone is a stop */
		kp_log_who("console");
		kp_proctitle("kpoold: console");
		_exit(kp_console_run(sv->conf, sv->slots));
	}
	kp_child_add(sv, &(struct kp_child){.pid = pid, .kind = KP_CHILD_CONSOLE});
	c->pid = pid;
	c->spawned_ms = kp_mono_ms();
	kp_log(KP_INFO, "console: started on %s pid=%d", sv->conf->console_listen, (int)pid);
}

/* At kpoold's start: the console starts on the loop's next turn when [console] listen is set. */
void kp_spawn_console_start(struct kp_supervisor *sv)
{
	sv->console.backoff_ms = KP_RESTART_MIN_MS;
	sv->console.due_ms = sv->conf->console_listen ? kp_mono_ms() : 0;
}

/*
 * SIGHUP: a running console is stopped (SIGTERM) and started again on the
 * new conf once it is gone, unless the new conf has no [console] listen;
 * one waiting for its back-off starts at once.
 */
void kp_spawn_console_reload(struct kp_supervisor *sv)
{
	struct kp_console_proc *c = &sv->console;
	bool on = sv->conf->console_listen != NULL;

	c->backoff_ms = KP_RESTART_MIN_MS;
	if (c->pid > 0) {
		c->again = on;
		if (c->kill_at_ms == 0)
			c->kill_at_ms = kp_mono_ms() + sv->conf->shutdown_timeout_ms;
		kill(c->pid, SIGTERM);
		kp_log(KP_NOTICE, "console pid=%d stopping: %s", (int)c->pid,
		       on ? "reloaded, starting anew" : "[console] is gone from the conf");
		return;
	}
	c->due_ms = on ? kp_mono_ms() : 0;
}

/*
 * The console ended.  Stopped by a reload, it starts again at once; else,
 * unless kpoold stops or [console] is gone, after its back-off.
 */
void kp_spawn_console_died(struct kp_supervisor *sv, int status, bool stopping)
{
	struct kp_console_proc *c = &sv->console;
	int64_t now = kp_mono_ms();
	bool asked = c->kill_at_ms != 0;
	char sig[32];

	c->pid = 0;
	c->kill_at_ms = 0;
	if (stopping)
		return;
	if (c->again) {
		c->again = false;
		c->due_ms = now;
		return;
	}
	if (asked || sv->conf->console_listen == NULL)
		return;
	if (now - c->spawned_ms >= KP_HEALTHY_MS)
		c->backoff_ms = KP_RESTART_MIN_MS;
	if (WIFSIGNALED(status))
		kp_log(KP_ERROR, "console killed by %s; starting it again in %llds",
		       kp_signame(WTERMSIG(status), sig, sizeof(sig)),
		       (long long)(c->backoff_ms / 1000));
	else
		kp_log(KP_ERROR, "console exited with status %d%s; starting it again in %llds",
		       WEXITSTATUS(status),
		       WEXITSTATUS(status) == KP_EXIT_CONFIG ? " (could not start)" : "",
		       (long long)(c->backoff_ms / 1000));
	c->due_ms = now + c->backoff_ms;
	c->backoff_ms =
	    c->backoff_ms * 2 > KP_RESTART_MAX_MS ? KP_RESTART_MAX_MS : c->backoff_ms * 2;
}

/* Starts the console when it is due; returns ms until it is, at most max. */
int64_t kp_spawn_console_due(struct kp_supervisor *sv, int64_t max)
{
	struct kp_console_proc *c = &sv->console;
	int64_t now = kp_mono_ms();

	if (c->pid > 0 || c->due_ms == 0 || sv->conf->console_listen == NULL)
		return max;
	if (c->due_ms <= now) {
		console_spawn(sv);
		return max;
	}
	return c->due_ms - now < max ? c->due_ms - now : max;
}

/* Stopping: the console is asked to stop, and killed if it is still there by deadline. */
void kp_spawn_console_stop(struct kp_supervisor *sv, int64_t deadline)
{
	struct kp_console_proc *c = &sv->console;

	c->due_ms = 0;
	c->again = false;
	if (c->pid <= 0)
		return;
	c->kill_at_ms = deadline;
	kill(c->pid, SIGTERM);
}

/* Kills a console that was asked to stop and did not within its time. */
void kp_spawn_console_cleanup(struct kp_supervisor *sv)
{
	struct kp_console_proc *c = &sv->console;

	if (c->pid <= 0 || c->kill_at_ms == 0 || kp_mono_ms() < c->kill_at_ms)
		return;
	kp_log(KP_ERROR, "console pid=%d did not stop within shutdown_timeout; killing it",
	       (int)c->pid);
	kill(c->pid, SIGKILL);
	c->kill_at_ms = INT64_MAX;
}

/* The end, or a failed start: a console still running is killed and waited for. */
void kp_spawn_console_kill(struct kp_supervisor *sv)
{
	struct kp_console_proc *c = &sv->console;

	if (c->pid <= 0)
		return;
	kill(c->pid, SIGKILL);
	while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
		;
	c->pid = 0;
}
