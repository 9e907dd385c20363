#include "hello.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
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
	char *buf = malloc(HELLO_FILE_MAX + 1), why[256];
	FILE *f = buf ? fopen(path, "r") : NULL;
	size_t n = 0;
	int rc = -1;

	if (!buf)
		return errf(err, errlen, "out of memory");
	if (!f) {
		snprintf(err, errlen, "link.hello_file '%s': cannot read it: %s", path,
			 strerror(errno));
		goto out;
	}
	n = fread(buf, 1, HELLO_FILE_MAX + 1, f);
	if (ferror(f))
		snprintf(err, errlen, "link.hello_file '%s': read error: %s", path,
			 strerror(errno));
	else if (n > HELLO_FILE_MAX)
		snprintf(err, errlen, "link.hello_file '%s': larger than %d bytes", path,
			 HELLO_FILE_MAX);
	else if (hello_parse(buf, n, max, h, why, sizeof(why)) < 0)
		snprintf(err, errlen, "link.hello_file '%s': %s", path, why);
	else
		rc = 0;
	fclose(f);
out:
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
