#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

#define JSON_INITIAL_CAP 256

void json_init(struct json *j)
{
	*j = (struct json){0};
}

void json_finish(struct json *j)
{
	free(j->buf);
	*j = (struct json){0};
}

void json_reset(struct json *j)
{
	char *buf = j->buf;
	size_t cap = j->cap;

	*j = (struct json){.buf = buf, .cap = cap};
	if (buf)
		buf[0] = '\0';
}

static void fail(struct json *j, enum json_error e)
{
	if (!j->error)
		j->error = e;
}

/* Room for n more bytes and the NUL. */
static bool reserve(struct json *j, size_t n)
{
	size_t need, cap;
	char *p;

	if (j->error)
		return false;
	if (n > SIZE_MAX - 1 - j->len) {
		fail(j, JSON_ENOMEM);
		return false;
	}
	need = j->len + n + 1;
	if (need <= j->cap)
		return true;
	cap = j->cap ? j->cap : JSON_INITIAL_CAP;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(j->buf, cap);
	if (!p) {
		fail(j, JSON_ENOMEM);
		return false;
	}
	j->buf = p;
	j->cap = cap;
	return true;
}

static void put(struct json *j, const void *s, size_t n)
{
	if (!reserve(j, n))
		return;
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

static void putc_(struct json *j, char c)
{
	put(j, &c, 1);
}

static bool innermost_is_object(const struct json *j)
{
	return j->depth > 0 && (j->in_object >> (j->depth - 1) & 1);
}

/* Before any value: checks where it may go and writes the separating comma. */
static bool begin_value(struct json *j)
{
	if (j->error)
		return false;
	if (j->depth == 0) {
		if (j->done) {
			fail(j, JSON_EMISUSE);
			return false;
		}
		return true;
	}
	if (innermost_is_object(j)) {
		if (!j->after_key) {
			fail(j, JSON_EMISUSE);
			return false;
		}
		j->after_key = false;
		return true;
	}
	if (j->has_item)
		putc_(j, ',');
	j->has_item = true;
	return !j->error;
}

static void end_scalar(struct json *j)
{
	if (j->depth == 0 && !j->error)
		j->done = true;
}

/* The two-character escape of c, or 0 when it has none. */
static char short_escape(unsigned char c)
{
	switch (c) {
	case '"':
		return '"';
	case '\\':
		return '\\';
	case '\b':
		return 'b';
	case '\f':
		return 'f';
	case '\n':
		return 'n';
	case '\r':
		return 'r';
	case '\t':
		return 't';
	}
	return 0;
}

/* Bytes from s that go out as they are: printable ASCII and valid UTF-8. */
static size_t plain_run(const unsigned char *s, size_t n)
{
	size_t run = 0, bad, k;

	while (run < n) {
		if (s[run] < 0x80) {
			if (s[run] < 0x20 || s[run] == '"' || s[run] == '\\')
				break;
			run++;
			continue;
		}
		k = utf8_seq(s + run, n - run, &bad);
		if (!k)
			break;
		run += k;
	}
	return run;
}

static void put_string(struct json *j, const unsigned char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, run, bad;
	unsigned char c;
	char e;

	putc_(j, '"');
	while (i < n && !j->error) {
		run = plain_run(s + i, n - i);
		if (run) {
			put(j, s + i, run);
			i += run;
			continue;
		}
		c = s[i];
		if ((e = short_escape(c))) {
			char esc[2] = { '\\', e };

			put(j, esc, sizeof(esc));
			i++;
		} else if (c < 0x20) {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

			put(j, u, sizeof(u));
			i++;
		} else {
			/* an invalid sequence: one replacement for its maximal subpart */
			bad = 1;
			(void)utf8_seq(s + i, n - i, &bad);
			put(j, "\\ufffd", 6);
			i += bad;
		}
	}
	putc_(j, '"');
}

void json_obj_begin(struct json *j)
{
	if (!begin_value(j))
		return;
	if (j->depth >= JSON_MAX_DEPTH) {
		fail(j, JSON_EMISUSE);
		return;
	}
	putc_(j, '{');
	j->in_object |= UINT32_C(1) << j->depth;
	j->depth++;
	j->has_item = false;
	j->after_key = false;
}

void json_arr_begin(struct json *j)
{
	if (!begin_value(j))
		return;
	if (j->depth >= JSON_MAX_DEPTH) {
		fail(j, JSON_EMISUSE);
		return;
	}
	putc_(j, '[');
	j->in_object &= ~(UINT32_C(1) << j->depth);
	j->depth++;
	j->has_item = false;
	j->after_key = false;
}

static void end_container(struct json *j, bool object)
{
	if (j->error)
		return;
	if (j->depth == 0 || innermost_is_object(j) != object || j->after_key) {
		fail(j, JSON_EMISUSE);
		return;
	}
	putc_(j, object ? '}' : ']');
	j->depth--;
	/* the container just closed is an element of its parent */
	j->has_item = true;
	end_scalar(j);
}

void json_obj_end(struct json *j)
{
	end_container(j, true);
}

void json_arr_end(struct json *j)
{
	end_container(j, false);
}

void json_keyn(struct json *j, const void *key, size_t len)
{
	if (j->error)
		return;
	if (!innermost_is_object(j) || j->after_key || (!key && len)) {
		fail(j, JSON_EMISUSE);
		return;
	}
	if (j->has_item)
		putc_(j, ',');
	put_string(j, key, len);
	putc_(j, ':');
	j->has_item = true;
	j->after_key = true;
}

void json_key(struct json *j, const char *key)
{
	if (!key) {
		fail(j, JSON_EMISUSE);
		return;
	}
	json_keyn(j, key, strlen(key));
}

void json_strn(struct json *j, const void *s, size_t len)
{
	if (!s && len) {
		fail(j, JSON_EMISUSE);
		return;
	}
	if (!begin_value(j))
		return;
	put_string(j, s, len);
	end_scalar(j);
}

void json_str(struct json *j, const char *s)
{
	if (!s)
		json_null(j);
	else
		json_strn(j, s, strlen(s));
}

void json_int(struct json *j, int64_t v)
{
	char b[24];
	int n;

	if (!begin_value(j))
		return;
	n = snprintf(b, sizeof(b), "%" PRId64, v);
	put(j, b, (size_t)n);
	end_scalar(j);
}

void json_uint(struct json *j, uint64_t v)
{
	char b[24];
	int n;

	if (!begin_value(j))
		return;
	n = snprintf(b, sizeof(b), "%" PRIu64, v);
	put(j, b, (size_t)n);
	end_scalar(j);
}

void json_double(struct json *j, double v)
{
	char b[40];
	int n;

	if (!isfinite(v)) {
		json_null(j);
		return;
	}
	if (!begin_value(j))
		return;
	/* the shortest of the two precisions that reads back as the same double */
	n = snprintf(b, sizeof(b), "%.15g", v);
	if (strtod(b, NULL) != v)
		n = snprintf(b, sizeof(b), "%.17g", v);
	/* a locale with a decimal comma must not leak into JSON */
	for (char *p = b; *p; p++)
		if (*p == ',')
			*p = '.';
	put(j, b, (size_t)n);
	end_scalar(j);
}

void json_bool(struct json *j, bool v)
{
	if (!begin_value(j))
		return;
	if (v)
		put(j, "true", 4);
	else
		put(j, "false", 5);
	end_scalar(j);
}

void json_null(struct json *j)
{
	if (!begin_value(j))
		return;
	put(j, "null", 4);
	end_scalar(j);
}

const char *json_result(const struct json *j, size_t *len)
{
	if (j->error || !j->done || j->depth != 0 || !j->buf) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = j->len;
	return j->buf;
}
