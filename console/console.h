/*
 * console.h - the web console: a child process of kpoold (titled
 * "kpoold: console") serving the pages on [console] listen.  It reads the
 * supervisor's shared slots, Kafka and the ledger; it changes nothing but
 * through the same calls the kpool command makes (pause, replay) and the
 * slots' restart requests.
 */
#ifndef KP_CONSOLE_H
#define KP_CONSOLE_H

struct kp_conf;
struct kp_slot;

/* Checks the console's token and certificate files; 0, or -1 with err. */
int kp_console_check(const struct kp_conf *conf, char *err, size_t len);
/* Serves the console until SIGTERM; returns the process's exit status. */
int kp_console_run(const struct kp_conf *conf, struct kp_slot *slots);

#endif /* KP_CONSOLE_H */
