/*
 * http_sink.c - an HTTP endpoint that takes every request and answers 200,
 * for scripts/bench webhook: libmicrohttpd, HTTP/1.1 keep-alive, one
 * thread.  http_sink PORTFILE: listens on a free loopback port, writes it to
 * PORTFILE, and on SIGTERM prints "requests=N connections=M".
 */
#include "config.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static unsigned long requests, connections;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *data_len, void **con_cls)
{
	static int first;
	struct MHD_Response *r;
	enum MHD_Result ret;

	(void)cls, (void)url, (void)method, (void)version, (void)data;
	if (*con_cls == NULL) { /* the headers: take the body next */
		*con_cls = &first;
		return MHD_YES;
	}
	if (*data_len > 0) {
		*data_len = 0;
		return MHD_YES;
	}
	requests++;
	r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)cls, (void)c, (void)socket_context;
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		connections++;
}

int main(int argc, char **argv)
{
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	sigset_t set;
	int sig;
	FILE *f;

	if (argc != 2) {
		fprintf(stderr, "usage: http_sink PORTFILE\n");
		return 2;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
			     on_request, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
			     MHD_OPTION_SOCK_ADDR, &lo, MHD_OPTION_CONNECTION_LIMIT, 1000u,
			     MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
	if (d == NULL || (info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)) == NULL) {
		fprintf(stderr, "http_sink: cannot listen\n");
		return 1;
	}
	f = fopen(argv[1], "w");
	if (f == NULL || fprintf(f, "%u\n", info->port) < 0 || fclose(f) != 0) {
		perror(argv[1]);
		return 1;
	}
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	printf("requests=%lu connections=%lu\n", requests, connections);
	return 0;
}
