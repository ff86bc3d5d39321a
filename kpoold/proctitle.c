/*
 * proctitle.c - the process title that ps shows: "kpoold: worker email#1".
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "kpoold.h"

/*
 * Like nginx, we move the environment out of the way so
 * that argv[0] may use the whole contiguous argv+environ area, then write the
 * title there; prctl() sets the short name that top shows.
 */
static char *title_start, *title_end;
char **kp_moved_environ; /* the environment's new home, for the process's life */

/* Makes room for process titles; on failure titles are simply not set. */
void kp_proctitle_init(int argc, char **argv)
{
	extern char **environ;
	char *end = argv[0] + strlen(argv[0]) + 1;
	size_t n = 0;

	for (int i = 1; i < argc; i++)
		if (argv[i] == end)
			end = argv[i] + strlen(argv[i]) + 1;
	while (environ[n])
		n++;
	char **env = calloc(n + 1, sizeof(*env));
	if (env == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		if (environ[i] == end)
			end = environ[i] + strlen(environ[i]) + 1;
		env[i] = strdup(environ[i]);
	}
	environ = kp_moved_environ = env;
	title_start = argv[0];
	title_end = end;
	for (int i = 1; i < argc; i++)
		argv[i] = NULL;
}

/* Sets the title ps shows, e.g. "kpoold: worker email#1". */
void kp_proctitle(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	prctl(PR_SET_NAME, buf + (strncmp(buf, "kpoold: ", 8) == 0 ? 8 : 0), 0, 0, 0);
	if (title_start == NULL)
		return;
	size_t room = (size_t)(title_end - title_start);
	memset(title_start, 0, room);
	snprintf(title_start, room, "%s", buf);
}
