#ifndef WST_CONFIG_CHECK_H
#define WST_CONFIG_CHECK_H

#include <stddef.h>

/* How a path a config key names is used, which decides what --check says of it. */
enum config_path {
	CONFIG_PATH_FILE,   /* read when used: only something that is not a file is an error */
	CONFIG_PATH_TEXT,   /* read at load: must be a readable regular file */
	CONFIG_PATH_TOKEN,  /* read at every attempt: missing is a warning (a refresher) */
	CONFIG_PATH_CREDS,  /* a token only we should read: a wider mode is a warning */
	CONFIG_PATH_SOCKET, /* a Unix socket we bind (sock_check_path) */
};

/*
 * What start would find about path, without blocking (a FIFO is refused
 * unopened). 0 when fine; 1 with why a warning, where only the start can
 * know or where it works but should not be so; -1 with why the error. why
 * never names the path: the caller names it with its key and line.
 */
int config_check_path(enum config_path use, const char *path, char *why, size_t whylen);

#endif
