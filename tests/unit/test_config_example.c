/*
 * conf/wstether.conf says it lists every key, and wstether.conf(5) documents
 * each: both are held to config_keys.c's key table, so a key added without its
 * example line or its entry in the manual fails here.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

#define MAX_SEEN 512

struct seen {
	char names[MAX_SEEN][64];
	size_t n;
};

static void add(struct seen *s, const char *group, const char *name, size_t nlen)
{
	if (s->n < MAX_SEEN)
		snprintf(s->names[s->n++], sizeof(s->names[0]), "%s.%.*s", group, (int)nlen, name);
}

static bool has(const struct seen *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->names[i], key))
			return true;
	return false;
}

/* The length of an identifier followed by '=' at p, or 0. */
static size_t assignment(const char *p)
{
	size_t n = 0;

	while (isalnum((unsigned char)p[n]) || p[n] == '_')
		n++;
	if (!n)
		return 0;
	for (const char *q = p + n; *q == ' ' || *q == '\t'; q++)
		if (q[1] == '=')
			return n;
	return p[n] == '=' ? n : 0;
}

static FILE *open_source(const char *rel)
{
	const char *root = getenv("WST_SOURCE_ROOT");
	char path[4096];
	FILE *f;

	if (!root)
		fail_msg("WST_SOURCE_ROOT is not set (tests/unit/meson.build sets it)");
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	return f;
}

/*
 * "key = ..." lines of the example, commented out or not, inside
 * "group = {" ... "};" (also on one line: "control = { socket = ...; };").
 */
static void example_keys(struct seen *s)
{
	FILE *f = open_source("conf/wstether.conf");
	char line[1024], group[64] = "";

	while (fgets(line, sizeof(line), f)) {
		char *p = line;
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == '#')
			p++;
		if (*p == '}') {
			group[0] = '\0';
			continue;
		}
		if (!(n = assignment(p)))
			continue;
		char *v = strchr(p, '=') + 1;

		while (*v == ' ')
			v++;
		if (*v != '{') {
			if (*group)
				add(s, group, p, n);
			continue;
		}
		snprintf(group, sizeof(group), "%.*s", (int)n, p);
		for (char *q = v + 1; *q && *q != '}'; q++) {
			while (*q == ' ' || *q == ';')
				q++;
			if ((n = assignment(q)))
				add(s, group, q, n);
			q = strchr(q, ';');
			if (!q)
				break;
		}
		if (strchr(v, '}'))
			group[0] = '\0';
	}
	fclose(f);
}

/* "*key* (type...)" lines of wstether.conf(5), under "# GROUP" headings. */
static void manual_keys(struct seen *s)
{
	FILE *f = open_source("man/wstether.conf.5.scd");
	char line[1024], group[64] = "";

	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#' && line[1] == ' ') {
			size_t i = 0;

			for (; line[2 + i] && line[2 + i] != '\n' && i + 1 < sizeof(group); i++)
				group[i] = (char)tolower((unsigned char)line[2 + i]);
			group[i] = '\0';
			continue;
		}
		if (line[0] != '*')
			continue;
		/* "*cert_file*, *key_file* (strings, ...)": each name before the '(' */
		for (char *p = line; *p == '*';) {
			char *end = strchr(p + 1, '*');

			if (!end)
				break;
			add(s, group, p + 1, (size_t)(end - p - 1));
			p = end + 1;
			while (*p == ',' || *p == ' ')
				p++;
		}
	}
	fclose(f);
}

static void check_all(const struct seen *s, const char *where)
{
	char key[64], missing[2048] = "";

	for (size_t i = 0; i < config_key_count(); i++) {
		config_key_info(i, key, sizeof(key), NULL);
		if (!has(s, key))
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing),
				 " %s", key);
	}
	if (*missing)
		fail_msg("%s lacks:%s", where, missing);
}

static void example_config_lists_every_key(void **state)
{
	struct seen s = {.n = 0};

	example_keys(&s);
	check_all(&s, "conf/wstether.conf");
}

static void manual_documents_every_key(void **state)
{
	struct seen s = {.n = 0};

	manual_keys(&s);
	check_all(&s, "man/wstether.conf.5.scd");
}

/* The checks can fail: a key the table does not have is not found. */
static void a_missing_key_is_seen(void **state)
{
	struct seen s = {.n = 0};

	example_keys(&s);
	assert_true(has(&s, "link.url") && has(&s, "control.socket"));
	assert_false(has(&s, "link.no_such_key"));
	assert_true(s.n > 0 && s.n < MAX_SEEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(example_config_lists_every_key),
	    cmocka_unit_test(manual_documents_every_key),
	    cmocka_unit_test(a_missing_key_is_seen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
