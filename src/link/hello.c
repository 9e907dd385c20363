#include "hello.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "readfile.h"
#include "utf8.h"

void hello_free(struct hello *h)
{
	free(h->data);
	free(h->lens);
	*h = (struct hello){0};
}

static int add(struct hello *h, const char *s, size_t len)
{
	size_t *nl = realloc(h->lens, (h->n + 1) * sizeof(*nl));

	if (!nl)
		return -1;
	h->lens = nl;
	memcpy(h->data + h->total, s, len);
	h->lens[h->n++] = len;
	h->total += len;
	return 0;
}

int hello_parse(const char *text, size_t len, size_t max, struct hello *h, char *err, size_t errlen)
{
	size_t line = 0;

	*h = (struct hello){0};
	if (!(h->data = malloc(len + 1)))
		goto oom;
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;

		line++;
		if (n && text[pos + n - 1] == '\r')
			n--;
		if (n > max) {
			snprintf(err, errlen,
				 "line %zu: %zu bytes, more than link.max_message_bytes (%zu)",
				 line, n, max);
			goto fail;
		}
		if (!utf8_valid(text + pos, n)) {
			snprintf(err, errlen, "line %zu: not valid UTF-8 (hello messages are text)",
				 line);
			goto fail;
		}
		if (n && add(h, text + pos, n) < 0)
			goto oom;
		pos = end + 1;
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	hello_free(h);
	return -1;
}

static int load_file(const char *path, size_t max, struct hello *h, char *err, size_t errlen)
{
	char *buf, why[256];
	size_t n;
	int rc;

	/* never blocks: it runs on the loop at every attempt, and the path may name a FIFO */
	if (readfile_regular(path, HELLO_FILE_MAX, &buf, &n, why, sizeof(why)) < 0)
		return errf(err, errlen, "link.hello_file '%s': cannot read it: %s", path, why);
	rc = hello_parse(buf, n, max, h, why, sizeof(why));
	if (rc < 0)
		snprintf(err, errlen, "link.hello_file '%s': %s", path, why);
	free(buf);
	return rc;
}

int hello_load(const struct wst_config *cfg, struct hello *h, char *err, size_t errlen)
{
	size_t n = strlen(cfg->hello);

	*h = (struct hello){0};
	if (*cfg->hello_file)
		return load_file(cfg->hello_file, cfg->max_message_bytes, h, err, errlen);
	if (!n)
		return 0;
	/* one message, as written: config_load checked its size and UTF-8 */
	if (!(h->data = malloc(n)) || add(h, cfg->hello, n) < 0) {
		hello_free(h);
		return errf(err, errlen, "out of memory");
	}
	return 0;
}

int hello_check(const struct wst_config *cfg, char *err, size_t errlen)
{
	struct hello h;
	int rc = hello_load(cfg, &h, err, errlen);

	hello_free(&h);
	return rc;
}
