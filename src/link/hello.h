#ifndef WST_HELLO_H
#define WST_HELLO_H

#include <stddef.h>

struct wst_config;

/*
 * The hello: text messages sent first on every connect, before anything
 * queued (link.hello, or link.hello_file re-read at every attempt). They are
 * the link's own: never queued, spooled or counted as user data.
 */
struct hello {
	char *data; /* the messages back to back */
	size_t *lens;
	size_t n, total;
};

/* A hello file larger than this is refused: it is read at every attempt. */
#define HELLO_FILE_MAX (1024 * 1024)

/*
 * Split text into one message per line ('\n', an optional '\r' before it
 * dropped; empty lines skipped). -1 with err set ("line N: ...") when a line
 * is longer than max or not valid UTF-8.
 */
int hello_parse(const char *text, size_t len, size_t max, struct hello *h, char *err,
		size_t errlen);
/* What cfg says to send now; h->n == 0 when nothing. -1 with err naming the key or file. */
int hello_load(const struct wst_config *cfg, struct hello *h, char *err, size_t errlen);
void hello_free(struct hello *h);
/* hello_load and forget: what --check, start and reload find before the first attempt. */
int hello_check(const struct wst_config *cfg, char *err, size_t errlen);

#endif
