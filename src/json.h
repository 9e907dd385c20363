#ifndef WST_JSON_H
#define WST_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A small JSON writer for the control socket's answers:
 *
 *	struct json j;
 *	json_init(&j);
 *	json_obj_begin(&j);
 *	json_key(&j, "ok");
 *	json_bool(&j, true);
 *	json_obj_end(&j);
 *	s = json_result(&j, &len);	// {"ok":true}, or NULL
 *	json_finish(&j);
 *
 * Commas and colons are inserted automatically. Misuse (a value in an object
 * without a key, a key outside an object, a mismatched end, nesting deeper
 * than JSON_MAX_DEPTH, a second top-level value) and out of memory never
 * crash: they set a sticky error, every later call does nothing, and
 * json_result returns NULL.
 *
 * Strings are escaped so that the output is always valid UTF-8 JSON: '"',
 * '\\' and control characters are escaped (\b \f \n \r \t, others \u00XX),
 * DEL and valid UTF-8 pass as they are, and each maximal invalid UTF-8
 * subsequence (overlong forms, surrogates, beyond U+10FFFF, truncated) is
 * replaced by one \ufffd.
 */

#define JSON_MAX_DEPTH 32

enum json_error {
	JSON_OK = 0,
	JSON_ENOMEM,	/* the buffer could not grow */
	JSON_EMISUSE,	/* calls out of order, or nesting too deep */
};

struct json {
	char *buf;		/* NUL-terminated while len > 0 */
	size_t len, cap;
	enum json_error error;
	unsigned depth;
	bool after_key;		/* in an object, a key was written: a value is due */
	bool has_item;		/* the innermost container has an element: next needs ',' */
	bool done;		/* the top-level value is complete */
	uint32_t in_object;	/* bit d: container at depth d+1 is an object, else an array */
};

void json_init(struct json *j);
void json_finish(struct json *j);
/* Forget the document but keep the buffer, to write the next one. */
void json_reset(struct json *j);

void json_obj_begin(struct json *j);
void json_obj_end(struct json *j);
void json_arr_begin(struct json *j);
void json_arr_end(struct json *j);

/* Keys are escaped like strings. s == NULL writes null as a value, a misuse as a key. */
void json_key(struct json *j, const char *key);
void json_keyn(struct json *j, const void *key, size_t len);
void json_str(struct json *j, const char *s);
void json_strn(struct json *j, const void *s, size_t len);	/* may contain NUL */
void json_int(struct json *j, int64_t v);
void json_uint(struct json *j, uint64_t v);
void json_double(struct json *j, double v);	/* NaN and infinities become null */
void json_bool(struct json *j, bool v);
void json_null(struct json *j);

/*
 * The complete document (NUL-terminated, *len without the NUL when len is
 * not NULL), valid until the next call on j; NULL on error or while a
 * container is still open or nothing was written.
 */
const char *json_result(const struct json *j, size_t *len);
static inline enum json_error json_error(const struct json *j) { return j->error; }

#endif
