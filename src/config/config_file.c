#include "config_file.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "readfile.h"

static int add_span(struct conf_text *t, int file, int file_line)
{
	struct conf_span *s;
	int first = t->lines + 1;

	if (t->n_spans && t->spans[t->n_spans - 1].first == first)
		t->n_spans--; /* the last span is empty: this one replaces it */
	s = realloc(t->spans, (t->n_spans + 1) * sizeof(*s));
	if (!s)
		return -1;
	t->spans = s;
	s[t->n_spans++] = (struct conf_span){first, file, file_line};
	return 0;
}

static int append(struct conf_text *t, const char *p, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t cap = (t->len + n + 1) * 2;
		char *nt = realloc(t->text, cap);

		if (!nt)
			return -1;
		t->text = nt;
		t->cap = cap;
	}
	for (size_t i = 0; i < n; i++)
		t->lines += p[i] == '\n';
	memcpy(t->text + t->len, p, n);
	t->len += n;
	t->text[t->len] = '\0';
	return 0;
}

/* An include names a file beside the one that includes it, as nginx does. */
static char *resolve(const char *from, const char *name, size_t nlen)
{
	const char *slash = strrchr(from, '/');
	size_t dlen = name[0] == '/' || !slash ? 0 : (size_t)(slash - from) + 1;
	char *p = malloc(dlen + nlen + 1);

	if (!p)
		return NULL;
	memcpy(p, from, dlen);
	memcpy(p + dlen, name, nlen);
	p[dlen + nlen] = '\0';
	return p;
}

/* The file name of an @include line, as libconfig's scanner matches it; NULL if none. */
static const char *include_name(const char *line, const char *end, size_t *nlen)
{
	const char *p = line, *q;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if ((size_t)(end - p) < 9 || memcmp(p, "@include", 8) || (p[8] != ' ' && p[8] != '\t'))
		return NULL;
	for (p += 8; p < end && (*p == ' ' || *p == '\t'); p++)
		;
	if (p == end || *p != '"' || !(q = memchr(p + 1, '"', (size_t)(end - p - 1))))
		return NULL;
	*nlen = (size_t)(q - p - 1);
	return p + 1;
}

/* After the name only a comment may follow, as libconfig would read the rest. */
static bool rest_is_blank(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p == end || *p == '#' || (end - p >= 2 && p[0] == '/' && p[1] == '/');
}

static int read_into(struct conf_text *t, const char *path, int depth, char *err, size_t errlen);

static int include(struct conf_text *t, int from, int line, const char *name, size_t nlen,
		   int depth, char *err, size_t errlen)
{
	char *path;
	int rc;

	if (depth >= CONF_INCLUDE_DEPTH)
		return errf(err, errlen,
			    "%s:%d: @include nested more than %d deep (does a file include "
			    "itself?)",
			    t->files[from], line, CONF_INCLUDE_DEPTH);
	if (!nlen)
		return errf(err, errlen, "%s:%d: @include \"\": no file named", t->files[from],
			    line);
	if (!(path = resolve(t->files[from], name, nlen)))
		return errf(err, errlen, "out of memory");
	rc = read_into(t, path, depth + 1, err, errlen);
	if (rc < 0 && strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':' &&
	    err[strlen(path) + 1] == ' ') {
		/* the included file could not be read: say where it was included */
		char why[512];

		snprintf(why, sizeof(why), "%s", err + strlen(path) + 2);
		errf(err, errlen, "%s:%d: @include \"%.*s\": %s: %s", t->files[from], line,
		     (int)nlen, name, path, why);
	}
	free(path);
	return rc;
}

/* One @include line: the file in its place, then the includer goes on at line + 1. */
static int include_line(struct conf_text *t, int me, int line, const char *p, const char *end,
			int depth, char *err, size_t errlen)
{
	size_t nlen;
	const char *name = include_name(p, end, &nlen);

	if (!rest_is_blank(name + nlen + 1, end))
		return errf(err, errlen, "%s:%d: @include \"FILE\" must be alone on its line",
			    t->files[me], line);
	if (include(t, me, line, name, nlen, depth, err, errlen) < 0)
		return -1;
	if ((t->len && t->text[t->len - 1] != '\n' && append(t, "\n", 1) < 0) ||
	    add_span(t, me, line + 1) < 0)
		return errf(err, errlen, "out of memory");
	return 0;
}

static int read_into(struct conf_text *t, const char *path, int depth, char *err, size_t errlen)
{
	char *buf, **nf, why[256];
	size_t n, nlen, room = CONF_TEXT_MAX - (t->len < CONF_TEXT_MAX ? t->len : CONF_TEXT_MAX);
	int me = (int)t->n_files, line = 1, rc = -1;
	const char *p, *end;

	if (readfile_regular(path, room, &buf, &n, why, sizeof(why)) < 0)
		return errf(err, errlen, "%s: cannot open config file: %s%s", path, why,
			    strstr(why, "larger than") ? " (the limit for a config file and "
							 "everything it includes)"
						       : "");
	if (!(nf = realloc(t->files, (t->n_files + 1) * sizeof(*nf))) ||
	    !(t->files = nf, nf[t->n_files] = strdup(path))) {
		free(buf);
		return errf(err, errlen, "out of memory");
	}
	t->n_files++;
	if (memchr(buf, '\0', n)) {
		errf(err, errlen, "%s: contains a NUL byte: not a text config file", path);
		goto out;
	}
	if (add_span(t, me, 1) < 0)
		goto oom;
	for (p = buf, end = buf + n; p < end; line++) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t len = eol ? (size_t)(eol - p) + 1 : (size_t)(end - p);

		if (include_name(p, p + len, &nlen)) {
			if (include_line(t, me, line, p, p + len, depth, err, errlen) < 0)
				goto out;
		} else if (append(t, p, len) < 0) {
			goto oom;
		}
		p += len;
	}
	rc = 0;
	goto out;
oom:
	errf(err, errlen, "out of memory");
out:
	free(buf);
	return rc;
}

int conf_text_read(struct conf_text *t, const char *path, char *err, size_t errlen)
{
	*t = (struct conf_text){0};
	if (append(t, "", 0) < 0)
		return errf(err, errlen, "out of memory");
	return read_into(t, path, 0, err, errlen);
}

const char *conf_text_where(const struct conf_text *t, int line, int *file_line)
{
	size_t i = 0;

	while (i + 1 < t->n_spans && t->spans[i + 1].first <= line)
		i++;
	if (!t->n_spans) {
		*file_line = line;
		return t->n_files ? t->files[0] : "";
	}
	*file_line = t->spans[i].file_line + (line - t->spans[i].first);
	return t->files[t->spans[i].file];
}

void conf_text_free(struct conf_text *t)
{
	for (size_t i = 0; i < t->n_files; i++)
		free(t->files[i]);
	free(t->files);
	free(t->spans);
	free(t->text);
	*t = (struct conf_text){0};
}
