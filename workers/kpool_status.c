/* kpool_status.c - placeholder */
#include "config.h"
#include "kpool_cmd.h"
int kp_cmd_status(const struct kp_conf *conf, int argc, char **argv)
{
	(void)conf; (void)argc; (void)argv;
	return 1;
}
