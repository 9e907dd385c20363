#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "spool.h"
#include "spool_format.h"

#define MAX_SEEN 2048
/* a time record; at a constant clock there is one at the start of each segment */
#define TREC (SPOOL_RECORD_HEADER + 8)

/* What replay and warn reported. */
struct seen {
	size_t n;
	uint64_t seq[MAX_SEEN];
	char *data[MAX_SEEN];
	size_t len[MAX_SEEN];
	bool binary[MAX_SEEN];
	int warnings;
	char last_warning[512];
	int abort_at; /* replay fails at this many messages; 0: never */
	int64_t now;  /* the clock, in ms */
};

struct fixture {
	char dir[64];
	struct seen seen;
};

static int on_replay(void *ud, uint64_t seq, const void *data, size_t len, bool binary)
{
	struct seen *s = ud;

	if (s->abort_at && (int)s->n == s->abort_at)
		return -1;
	assert_true(s->n < MAX_SEEN);
	s->seq[s->n] = seq;
	s->data[s->n] = malloc(len + 1);
	assert_non_null(s->data[s->n]);
	memcpy(s->data[s->n], data, len);
	s->data[s->n][len] = '\0';
	s->len[s->n] = len;
	s->binary[s->n] = binary;
	s->n++;
	return 0;
}

static void on_warn(void *ud, const char *msg)
{
	struct seen *s = ud;

	s->warnings++;
	snprintf(s->last_warning, sizeof(s->last_warning), "%s", msg);
}

/* What status shows of the files, as the tests check it. */
static uint64_t spool_bytes(const struct spool *sp)
{
	struct spool_status ss;

	spool_status(sp, &ss);
	return ss.bytes;
}

static size_t spool_segments(const struct spool *sp)
{
	struct spool_status ss;

	spool_status(sp, &ss);
	return ss.segments;
}

static int64_t on_clock(void *ud)
{
	return ((struct seen *)ud)->now;
}

static void seen_clear(struct seen *s)
{
	int64_t now = s->now;

	for (size_t i = 0; i < s->n; i++)
		free(s->data[i]);
	memset(s, 0, sizeof(*s));
	s->now = now;
}

static struct spool *open_spool(struct fixture *fx, size_t segment_bytes, struct spool_stats *st)
{
	const struct spool_params p = {
	    .segment_bytes = segment_bytes,
	    .replay = on_replay,
	    .warn = on_warn,
	    .clock = on_clock,
	    .ud = &fx->seen,
	};

	seen_clear(&fx->seen);
	return spool_open(fx->dir, &p, st);
}

static void payload(char *buf, size_t size, uint64_t seq)
{
	snprintf(buf, size, "message %llu", (unsigned long long)seq);
}

static void append_range(struct spool *sp, uint64_t from, uint64_t to)
{
	char buf[64];

	for (uint64_t s = from; s <= to; s++) {
		payload(buf, sizeof(buf), s);
		assert_int_equal(spool_append(sp, s, buf, strlen(buf), s % 3 == 0), 0);
	}
}

/* The replayed messages are exactly from..to, in order, with their payloads. */
static void assert_seen_range(const struct seen *s, size_t first, uint64_t from, uint64_t to)
{
	char buf[64];

	assert_true(s->n >= first + (to - from + 1));
	for (uint64_t q = from; q <= to; q++) {
		size_t i = first + (size_t)(q - from);

		payload(buf, sizeof(buf), q);
		assert_int_equal(s->seq[i], q);
		assert_string_equal(s->data[i], buf);
		assert_int_equal(s->binary[i], q % 3 == 0);
	}
}

static size_t count_segments(const char *dir, uint64_t *bytes)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	*bytes = 0;
	while ((e = readdir(d))) {
		struct stat st;

		if (strncmp(e->d_name, "seg-", 4) != 0)
			continue;
		assert_int_equal(fstatat(dirfd(d), e->d_name, &st, 0), 0);
		*bytes += (uint64_t)st.st_size;
		n++;
	}
	closedir(d);
	return n;
}

static char *seg_path(const struct fixture *fx, uint64_t name)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/seg-%016llx.wsq", fx->dir, (unsigned long long)name);
	return path;
}

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/wst-spool-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	*state = fx;
	return 0;
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[512];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			remove_tree(path);
		else
			unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	seen_clear(&fx->seen);
	remove_tree(fx->dir);
	free(fx);
	return 0;
}

static void append_reopen_replays_in_order(void **state)
{
	struct fixture *fx = *state;
	struct spool_stats st;
	struct spool *sp;
	const unsigned char bin[4] = {0xff, 0, '\n', 0xfe};

	sp = open_spool(fx, 0, &st);
	assert_non_null(sp);
	assert_int_equal(st.last_seq, 0);
	assert_int_equal(st.replayed, 0);
	assert_false(spool_dirty(sp));
	append_range(sp, 1, 100);
	assert_int_equal(spool_append(sp, 101, "", 0, false), 0);
	assert_int_equal(spool_append(sp, 102, bin, 4, true), 0);
	assert_true(spool_dirty(sp));
	assert_int_equal(spool_sync(sp), 0);
	assert_false(spool_dirty(sp));
	assert_int_equal(spool_close(sp), 0);

	sp = open_spool(fx, 0, &st);
	assert_non_null(sp);
	assert_int_equal(st.last_seq, 102);
	assert_int_equal(st.replayed, 102);
	assert_int_equal(st.corrupt, 0);
	assert_int_equal(fx->seen.warnings, 0);
	assert_seen_range(&fx->seen, 0, 1, 100);
	assert_int_equal(fx->seen.len[100], 0);
	assert_int_equal(fx->seen.len[101], 4);
	assert_true(fx->seen.binary[101]);
	assert_memory_equal(fx->seen.data[101], bin, 4);
	/* numbering goes on after what was found */
	assert_int_equal(spool_append(sp, 102, "x", 1, false), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_append(sp, 103, "x", 1, false), 0);
	assert_int_equal(spool_close(sp), 0);

	/* not syncing before close is fine: close syncs, and kill -9 keeps the page cache */
	sp = open_spool(fx, 0, &st);
	assert_int_equal(st.replayed, 103);
	assert_int_equal(spool_close(sp), 0);
}

static void confirmed_messages_are_not_replayed(void **state)
{
	struct fixture *fx = *state;
	struct spool_stats st;
	struct spool *sp;

	sp = open_spool(fx, 0, &st);
	append_range(sp, 1, 10);
	assert_int_equal(spool_confirm(sp, 6), 0);
	assert_int_equal(spool_confirm(sp, 3), 0); /* going back is a no-op */
	assert_int_equal(spool_close(sp), 0);

	sp = open_spool(fx, 0, &st);
	assert_non_null(sp);
	assert_int_equal(st.confirmed, 6);
	assert_int_equal(st.replayed, 4);
	assert_seen_range(&fx->seen, 0, 7, 10);
	append_range(sp, 11, 12);
	assert_int_equal(spool_confirm(sp, 11), 0);
	assert_int_equal(spool_close(sp), 0);

	sp = open_spool(fx, 0, &st);
	assert_int_equal(st.replayed, 1);
	assert_seen_range(&fx->seen, 0, 12, 12);
	assert_int_equal(st.last_seq, 12);

	/*
	 * A confirmation above everything on disk (those appends failed, say):
	 * numbering must go on above it, or new messages would count as
	 * confirmed at the next open. Found by fuzz_spool.
	 */
	assert_int_equal(spool_confirm(sp, 20), 0);
	assert_int_equal(spool_append(sp, 20, "x", 1, false), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_close(sp), 0);
	sp = open_spool(fx, 0, &st);
	assert_int_equal(st.replayed, 0);
	assert_int_equal(st.last_seq, 20);
	append_range(sp, 21, 21);
	assert_int_equal(spool_close(sp), 0);
	sp = open_spool(fx, 0, &st);
	assert_int_equal(st.replayed, 1);
	assert_seen_range(&fx->seen, 0, 21, 21);
	assert_int_equal(spool_close(sp), 0);
}

/* a time record and four 34-byte records fill a segment */
#define SEG4 (TREC + 4 * 34 - 1)

static void rotates_and_deletes_segments(void **state)
{
	struct fixture *fx = *state;
	struct spool_stats st;
	struct spool *sp;
	uint64_t bytes;
	size_t n;

	/* "message NN" is 10 bytes: 34-byte records, a new segment every 4 */
	sp = open_spool(fx, SEG4, &st);
	append_range(sp, 10, 49);
	assert_int_equal(spool_sync(sp), 0);
	n = count_segments(fx->dir, &bytes);
	assert_int_equal(n, 10);
	assert_int_equal(spool_segments(sp), n);
	assert_int_equal(spool_bytes(sp), bytes);
	assert_int_equal(bytes, 40 * 34 + 10 * TREC);

	/* segments 10..13, 14..17 go; 18..21 holds 22 unconfirmed */
	assert_int_equal(spool_confirm(sp, 20), 0);
	n = count_segments(fx->dir, &bytes);
	assert_int_equal(n, 8);
	assert_int_equal(spool_bytes(sp), bytes);
	assert_int_equal(access(seg_path(fx, 10), F_OK), -1);
	assert_int_equal(access(seg_path(fx, 18), F_OK), 0);
	assert_int_equal(spool_close(sp), 0);

	sp = open_spool(fx, SEG4, &st);
	assert_non_null(sp);
	assert_int_equal(st.replayed, 29);
	assert_seen_range(&fx->seen, 0, 21, 49);
	/* the confirmation carries over into new segments */
	append_range(sp, 50, 61);
	assert_int_equal(spool_confirm(sp, 45), 0);
	assert_int_equal(spool_close(sp), 0);
	sp = open_spool(fx, SEG4, &st);
	assert_int_equal(st.confirmed, 45);
	assert_seen_range(&fx->seen, 0, 46, 61);
	assert_int_equal(st.replayed, 16);

	/* all confirmed, newest segment full: nothing is left on disk */
	append_range(sp, 62, 65);
	assert_int_equal(spool_confirm(sp, 65), 0);
	assert_int_equal(spool_bytes(sp), 0);
	assert_int_equal(spool_segments(sp), 0);
	assert_int_equal(count_segments(fx->dir, &bytes), 0);
	assert_int_equal(spool_close(sp), 0);
	sp = open_spool(fx, SEG4, &st);
	assert_int_equal(st.replayed, 0);
	assert_int_equal(spool_close(sp), 0);
}

static void torn_tail_at_every_offset_keeps_earlier_records(void **state)
{
	struct fixture *fx = *state;
	struct spool_stats st;
	struct spool *sp;
	unsigned char *orig;
	size_t len, last_start, cut_len;

	sp = open_spool(fx, 0, &st);
	append_range(sp, 1, 5);
	assert_int_equal(spool_close(sp), 0);
	orig = read_file(seg_path(fx, 1), &len);
	last_start = len - (SPOOL_RECORD_HEADER + strlen("message 5"));

	for (size_t cut = last_start; cut < len; cut++) {
		write_file(seg_path(fx, 1), orig, cut);
		sp = open_spool(fx, 0, &st);
		assert_non_null(sp);
		assert_int_equal(st.replayed, 4);
		assert_seen_range(&fx->seen, 0, 1, 4);
		assert_int_equal(st.truncated, cut - last_start);
		assert_int_equal(fx->seen.warnings, cut > last_start);
		free(read_file(seg_path(fx, 1), &cut_len));
		assert_int_equal(cut_len, last_start);
		/* new records go right after the good ones */
		append_range(sp, 6, 6);
		assert_int_equal(spool_close(sp), 0);
		sp = open_spool(fx, 0, &st);
		assert_int_equal(st.replayed, 5);
		assert_int_equal(st.corrupt, 0);
		assert_seen_range(&fx->seen, 0, 1, 4);
		assert_seen_range(&fx->seen, 4, 6, 6);
		assert_int_equal(spool_close(sp), 0);
	}

	/* a tail of zeros, as a power loss can leave after a size update */
	{
		unsigned char *z = calloc(1, len + 4096);

		assert_non_null(z);
		memcpy(z, orig, len);
		write_file(seg_path(fx, 1), z, len + 4096);
		free(z);
		sp = open_spool(fx, 0, &st);
		assert_int_equal(st.replayed, 5);
		assert_int_equal(st.truncated, 4096);
		assert_int_equal(spool_bytes(sp), len);
		assert_int_equal(spool_close(sp), 0);
	}

	/* everything torn: the segment goes, and numbering stays above its name */
	write_file(seg_path(fx, 1), orig, 10);
	sp = open_spool(fx, 0, &st);
	assert_int_equal(st.replayed, 0);
	assert_int_equal(st.last_seq, 1);
	assert_int_equal(spool_segments(sp), 0);
	assert_int_equal(spool_close(sp), 0);
	free(orig);
}

static void flipped_byte_in_the_middle_costs_only_its_record(void **state)
{
	struct fixture *fx = *state;
	struct spool_stats st;
	struct spool_status ss;
	struct spool *sp;
	unsigned char *orig;
	size_t len, rec = SPOOL_RECORD_HEADER + strlen("message 1");

	/* in the newest segment: kept as it is, new records go to a new one */
	sp = open_spool(fx, 0, &st);
	append_range(sp, 1, 9);
	assert_int_equal(spool_close(sp), 0);
	orig = read_file(seg_path(fx, 1), &len);
	assert_int_equal(len, TREC + 9 * rec);
	orig[TREC + 4 * rec + SPOOL_RECORD_HEADER + 3] ^= 0x20; /* payload of 5 */
	write_file(seg_path(fx, 1), orig, len);

	sp = open_spool(fx, 0, &st);
	assert_non_null(sp);
	assert_int_equal(st.replayed, 8);
	assert_seen_range(&fx->seen, 0, 1, 4);
	assert_seen_range(&fx->seen, 4, 6, 9);
	assert_int_equal(st.corrupt, 1);
	assert_int_equal(st.truncated, 0);
	assert_int_equal(st.skipped, rec);
	assert_int_equal(st.skipped_records, 1);
	assert_int_equal(fx->seen.warnings, 1);
	assert_non_null(strstr(fx->seen.last_warning, "bad CRC"));
	assert_non_null(strstr(fx->seen.last_warning, "seg-0000000000000001.wsq"));
	spool_status(sp, &ss);
	assert_int_equal(ss.skipped_records, 1);
	assert_int_equal(ss.skipped_bytes, rec);
	assert_string_equal(ss.last_error, fx->seen.last_warning);
	assert_int_equal(st.last_seq, 9);
	append_range(sp, 10, 11);
	assert_int_equal(spool_close(sp), 0);
	free(read_file(seg_path(fx, 1), &len));
	assert_int_equal(len, TREC + 9 * rec); /* evidence untouched */

	sp = open_spool(fx, 0, &st);
	assert_int_equal(st.replayed, 10);
	assert_seen_range(&fx->seen, 8, 10, 11);
	/* once what is readable is confirmed, the damaged segment goes */
	assert_int_equal(spool_confirm(sp, 9), 0);
	assert_int_equal(access(seg_path(fx, 1), F_OK), -1);
	assert_int_equal(spool_close(sp), 0);
	free(orig);
}

/* Whatever byte of a record is damaged, and however, only that record is lost. */
static void any_damaged_byte_costs_one_record(void **state)
{
	struct fixture *fx = *state;
	static const unsigned char flips[] = {0x01, 0x80, 0xff};
	size_t len, rec = SPOOL_RECORD_HEADER + strlen("message 10");
	struct spool_stats st;
	struct spool *sp;
	unsigned char *orig;

	sp = open_spool(fx, 0, &st);
	append_range(sp, 10, 19);
	assert_int_equal(spool_close(sp), 0);
	orig = read_file(seg_path(fx, 10), &len);
	assert_int_equal(len, TREC + 10 * rec);
	for (size_t i = 0; i < rec; i++) {
		for (size_t f = 0; f < sizeof(flips); f++) {
			size_t at = TREC + 4 * rec + i; /* message 14 */

			orig[at] ^= flips[f];
			write_file(seg_path(fx, 10), orig, len);
			orig[at] ^= flips[f];
			sp = open_spool(fx, 0, &st);
			assert_non_null(sp);
			assert_int_equal(st.replayed, 9);
			assert_seen_range(&fx->seen, 0, 10, 13);
			assert_seen_range(&fx->seen, 4, 15, 19);
			assert_int_equal(st.skipped_records, 1);
			assert_int_equal(st.skipped, rec);
			assert_int_equal(fx->seen.warnings, 1);
			assert_int_equal(spool_close(sp), 0);
			/* the damaged segment was retired: start again from the original */
			remove(seg_path(fx, 20));
		}
	}
	free(orig);
}

static void garbage_between_records_is_skipped(void **state)
{
	struct fixture *fx = *state;
	size_t len, rec = SPOOL_RECORD_HEADER + strlen("message 1");
	struct spool_stats st;
	struct spool *sp;
	unsigned char *orig, *bad;
	const size_t junk = 300;

	sp = open_spool(fx, 0, &st);
	append_range(sp, 1, 6);
	assert_int_equal(spool_close(sp), 0);
	orig = read_file(seg_path(fx, 1), &len);
	bad = malloc(len + junk);
	assert_non_null(bad);
	/* junk with record magics in it, between messages 3 and 4 */
	memcpy(bad, orig, TREC + 3 * rec);
	for (size_t i = 0; i < junk; i++)
		bad[TREC + 3 * rec + i] = (unsigned char)(i * 37 + 11);
	memcpy(bad + TREC + 3 * rec + 40, "WSQ1", 4);
	memcpy(bad + TREC + 3 * rec + 200, orig + TREC, SPOOL_RECORD_HEADER); /* a header, cut */
	memcpy(bad + TREC + 3 * rec + junk, orig + TREC + 3 * rec, len - TREC - 3 * rec);
	write_file(seg_path(fx, 1), bad, len + junk);

	sp = open_spool(fx, 0, &st);
	assert_non_null(sp);
	assert_int_equal(st.replayed, 6);
	assert_seen_range(&fx->seen, 0, 1, 6);
	assert_int_equal(st.skipped, junk);
	assert_int_equal(st.skipped_records, 3);
	assert_int_equal(st.truncated, 0);
	assert_int_equal(spool_close(sp), 0);
	free(bad);
	free(orig);
}

/* A message that holds a spool record: damaged, it does not turn into that record. */
static void record_inside_a_damaged_message_is_not_replayed(void **state)
{
	struct fixture *fx = *state;
	unsigned char inner[SPOOL_RECORD_HEADER + 4 + 8], *orig;
	struct spool_stats st;
	struct spool *sp;
	uint32_t crc;
	size_t len;

	memset(inner, 0, sizeof(inner));
	memcpy(inner, "WSQ1", 4);
	inner[4] = 1;	 /* message */
	inner[8] = 4;	 /* len */
	inner[12] = 100; /* seq */
	memcpy(inner + SPOOL_RECORD_HEADER, "evil", 4);
	crc = spool_crc32c(spool_crc32c(0, inner, 20), inner + SPOOL_RECORD_HEADER, 4);
	for (int i = 0; i < 4; i++)
		inner[20 + i] = (unsigned char)(crc >> (8 * i));
	memcpy(inner + SPOOL_RECORD_HEADER + 4, "trailing", 8);

	sp = open_spool(fx, 0, &st);
	append_range(sp, 1, 2);
	assert_int_equal(spool_append(sp, 3, inner, sizeof(inner), true), 0);
	append_range(sp, 4, 5);
	assert_int_equal(spool_close(sp), 0);
	orig = read_file(seg_path(fx, 1), &len);
	orig[len - 2 * (SPOOL_RECORD_HEADER + 9) - 3] ^= 0x01; /* in "trailing" */
	write_file(seg_path(fx, 1), orig, len);
	free(orig);

	sp = open_spool(fx, 0, &st);
	assert_non_null(sp);
	assert_int_equal(st.replayed, 4);
	assert_seen_range(&fx->seen, 0, 1, 2);
	assert_seen_range(&fx->seen, 2, 4, 5);
	assert_int_equal(st.skipped_records, 1);
	assert_int_equal(st.skipped, SPOOL_RECORD_HEADER + sizeof(inner));
	assert_int_equal(spool_close(sp), 0);
}

static void bad_header_in_an_older_segment(void **state)
{
	struct fixture *fx = *state;
	struct spool_stats st;
	struct spool *sp;
	unsigned char *orig;
	size_t len, rec = SPOOL_RECORD_HEADER + strlen("message 10");

	sp = open_spool(fx, TREC + 4 * rec, &st);
	append_range(sp, 10, 21); /* segments 10, 14, 18 */
	assert_int_equal(spool_close(sp), 0);
	orig = read_file(seg_path(fx, 14), &len);
	orig[TREC + 2 * rec] = 'X'; /* magic of 16 */
	write_file(seg_path(fx, 14), orig, len);
	free(orig);

	sp = open_spool(fx, TREC + 4 * rec, &st);
	assert_non_null(sp);
	assert_int_equal(st.replayed, 11);
	assert_seen_range(&fx->seen, 0, 10, 15);
	assert_seen_range(&fx->seen, 6, 17, 21);
	assert_non_null(strstr(fx->seen.last_warning, "bad magic"));
	assert_int_equal(st.skipped, rec);
	append_range(sp, 22, 22);
	assert_int_equal(spool_close(sp), 0);

	sp = open_spool(fx, TREC + 4 * rec, &st);
	assert_int_equal(st.replayed, 12);
	assert_seen_range(&fx->seen, 11, 22, 22);
	assert_int_equal(spool_close(sp), 0);
}

static void seqs_that_do_not_grow_are_corruption(void **state)
{
	struct fixture *fx = *state;
	struct spool_stats st;
	struct spool *sp;
	unsigned char *a;
	size_t len;

	sp = open_spool(fx, 0, &st);
	append_range(sp, 1, 3);
	assert_int_equal(spool_close(sp), 0);
	/* a copy of the segment under a later name repeats seqs 1..3 */
	a = read_file(seg_path(fx, 1), &len);
	write_file(seg_path(fx, 9), a, len);
	free(a);
	sp = open_spool(fx, 0, &st);
	assert_non_null(sp);
	assert_int_equal(st.replayed, 3);
	assert_non_null(strstr(fx->seen.last_warning, "does not grow"));
	assert_int_equal(st.last_seq, 9);
	assert_int_equal(spool_append(sp, 10, "x", 1, false), 0);
	assert_int_equal(spool_close(sp), 0);
}

/* Runs in a forked child: no cmocka asserts, the exit status tells. */
static int fill_until_full(const char *dir, rlim_t limit)
{
	const struct spool_params p = {.segment_bytes = 1 << 20};
	struct rlimit rl = {.rlim_cur = limit, .rlim_max = RLIM_INFINITY};
	struct spool_status ss;
	char buf[100];
	struct spool *sp;
	int ok = 0;

	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &rl);
	rl.rlim_cur = limit;
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
		return 200;
	sp = spool_open(dir, &p, NULL);
	if (!sp)
		return 201;
	memset(buf, 'z', sizeof(buf));
	for (uint64_t seq = 1; seq < 100; seq++) {
		if (spool_append(sp, seq, buf, sizeof(buf), false) == 0) {
			ok++;
			continue;
		}
		if (errno != EFBIG)
			return 203;
		spool_status(sp, &ss);
		if (!ss.holding || !ss.disk_full || !strstr(ss.last_error, "File too large"))
			return 206;
		/* the full segment is retired: the next append goes to a new file */
		if (spool_append(sp, seq + 1, buf, sizeof(buf), false) < 0)
			return 205;
		spool_status(sp, &ss);
		if (ss.holding || ss.disk_full)
			return 207;
		ok++;
		break;
	}
	if (spool_sync(sp) < 0)
		return 204;
	spool_close(sp);
	return ok;
}

static void disk_full_fails_cleanly(void **state)
{
	struct fixture *fx = *state;
	struct spool_stats st;
	struct spool *sp;
	const size_t rec = SPOOL_RECORD_HEADER + 100;
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fill_until_full(fx->dir, 7 * rec + rec / 2));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 8);

	sp = open_spool(fx, 0, &st);
	assert_non_null(sp);
	assert_int_equal(st.corrupt, 0); /* the half record was cut back */
	assert_int_equal(st.replayed, 8);
	for (size_t i = 0; i < 8; i++) {
		/* seq 8 failed; 9 went to a new segment */
		assert_int_equal(fx->seen.seq[i], i < 7 ? i + 1 : 9);
		assert_int_equal(fx->seen.len[i], 100);
	}
	assert_int_equal(spool_close(sp), 0);
}

static void open_errors_and_bad_arguments(void **state)
{
	struct fixture *fx = *state;
	struct spool_stats st;
	struct spool *sp, *sp2;
	char nested[300];
	struct stat s;

	errno = 0;
	assert_null(spool_open("", NULL, NULL));
	assert_int_equal(errno, EINVAL);
	assert_null(spool_open(NULL, NULL, NULL));

	/* missing directories are created, mode 0700 */
	snprintf(nested, sizeof(nested), "%s/a/b/spool", fx->dir);
	sp = spool_open(nested, NULL, NULL);
	assert_non_null(sp);
	assert_int_equal(stat(nested, &s), 0);
	assert_int_equal(s.st_mode & 0777, 0700);
	/* one process at a time */
	sp2 = spool_open(nested, NULL, NULL);
	assert_null(sp2);
	assert_int_equal(errno, EWOULDBLOCK);
	assert_int_equal(spool_append(sp, 0, "x", 1, false), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_append(sp, 1, NULL, 1, false), -1);
	assert_int_equal(spool_append(NULL, 1, "x", 1, false), -1);
	assert_int_equal(spool_confirm(NULL, 1), -1);
	assert_int_equal(spool_sync(NULL), -1);
	assert_int_equal(spool_bytes(NULL), 0); /* status of no spool: zeros */
	assert_int_equal(spool_close(NULL), 0);
	assert_int_equal(spool_confirm(sp, 5), 0); /* nothing on disk yet */
	assert_int_equal(spool_close(sp), 0);

	/* a file where the directory should be */
	snprintf(nested, sizeof(nested), "%s/file", fx->dir);
	write_file(nested, "x", 1);
	assert_null(spool_open(nested, NULL, NULL));
	assert_int_equal(errno, ENOTDIR);

	/* other files are left alone; a directory with a segment's name is ignored */
	snprintf(nested, sizeof(nested), "%s/notes.txt", fx->dir);
	write_file(nested, "x", 1);
	assert_int_equal(mkdir(seg_path(fx, 5), 0700), 0);
	sp = open_spool(fx, 0, &st);
	assert_non_null(sp);
	assert_int_equal(fx->seen.warnings, 1);
	assert_non_null(strstr(fx->seen.last_warning, "is not a regular file"));
	assert_int_equal(st.set_aside, 1);
	assert_int_equal(st.last_seq, 5);
	assert_int_equal(spool_append(sp, 6, "x", 1, false), 0);
	assert_int_equal(spool_close(sp), 0);
	sp = open_spool(fx, 0, &st);
	assert_int_equal(st.replayed, 1);
	assert_int_equal(st.set_aside, 0); /* renamed aside, not tripped over again */
	assert_int_equal(spool_close(sp), 0);
	snprintf(nested, sizeof(nested), "%s.bad", seg_path(fx, 5));
	assert_int_equal(stat(nested, &s), 0);
	assert_true(S_ISDIR(s.st_mode));
}

/*
 * As an unprivileged user (a forked child when we are root): a segment that
 * cannot be opened is renamed aside, a newest one that cannot be written is
 * replayed, and numbering stays above both. No cmocka asserts in the child:
 * the exit status tells which check failed.
 */
static int unusable_segments_child(struct fixture *fx)
{
	const struct spool_params p = {.replay = on_replay, .warn = on_warn, .ud = &fx->seen};
	struct spool_stats st;
	struct spool_status ss;
	struct spool *sp;
	char bad[300];

	if (chmod(seg_path(fx, 11), 0) < 0 || chmod(seg_path(fx, 21), 0400) < 0)
		return 100;
	sp = spool_open(fx->dir, &p, &st);
	if (!sp)
		return 101;
	if (st.replayed != 20 || st.set_aside != 1 || fx->seen.seq[9] != 10 ||
	    fx->seen.seq[10] != 21 || fx->seen.warnings != 2)
		return 102;
	snprintf(bad, sizeof(bad), "%s.bad", seg_path(fx, 11));
	if (access(bad, F_OK) < 0 || access(seg_path(fx, 11), F_OK) == 0)
		return 103;
	/* its seqs may go up to 11 + its size: numbering goes on above them */
	if (st.last_seq < 11 + 200)
		return 104;
	if (spool_append(sp, st.last_seq + 1, "new", 3, false) < 0)
		return 105;
	spool_status(sp, &ss);
	if (ss.set_aside != 1 || !strstr(ss.last_error, "cannot be written"))
		return 106;
	/* everything confirmed: the read-only segment goes (the directory is ours) */
	if (spool_confirm(sp, st.last_seq + 1) < 0 || spool_close(sp) < 0)
		return 107;
	seen_clear(&fx->seen);
	sp = spool_open(fx->dir, &p, &st);
	if (!sp || st.replayed != 0 || st.set_aside != 0 || st.last_seq < 11 + 200)
		return 108;
	spool_close(sp);
	return 0;
}

static void unusable_segments_are_set_aside(void **state)
{
	struct fixture *fx = *state;
	struct spool_stats st;
	struct spool *sp;
	int status;
	pid_t pid;

	/* "message 1".."message 9" take 33 bytes, the rest 34: ten a segment */
	sp = open_spool(fx, TREC + 9 * 33 + 34, &st);
	append_range(sp, 1, 30);
	assert_int_equal(spool_close(sp), 0);
	assert_int_equal(access(seg_path(fx, 11), F_OK), 0);
	assert_int_equal(access(seg_path(fx, 21), F_OK), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0) {
			DIR *d = opendir(fx->dir);
			struct dirent *e;

			if (!d || chown(fx->dir, 65534, 65534) < 0)
				_exit(90);
			while ((e = readdir(d)))
				if (e->d_name[0] != '.' &&
				    fchownat(dirfd(d), e->d_name, 65534, 65534, 0) < 0)
					_exit(91);
			closedir(d);
			if (setgid(65534) < 0 || setuid(65534) < 0)
				_exit(92);
		}
		_exit(unusable_segments_child(fx));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* The oldest unconfirmed message's age, from time records, across a reopen. */
static void oldest_message_age(void **state)
{
	struct fixture *fx = *state;
	struct spool_status ss;
	struct spool_stats st;
	struct spool *sp;
	unsigned char *orig, *stripped;
	size_t len, n = 0, rec = SPOOL_RECORD_HEADER + strlen("message 1");

	spool_status(NULL, &ss);
	assert_int_equal(ss.oldest_age_ms, -1);
	fx->seen.now = 1000000;
	sp = open_spool(fx, 0, &st);
	spool_status(sp, &ss);
	assert_int_equal(ss.oldest_age_ms, -1);
	append_range(sp, 1, 3); /* dated 1000000 */
	fx->seen.now += 500;
	append_range(sp, 4, 4); /* within a second: no new time record */
	fx->seen.now += 1500;
	append_range(sp, 5, 6); /* dated 1002000 */
	fx->seen.now += 3000;
	spool_status(sp, &ss);
	assert_int_equal(ss.oldest_age_ms, 5000);
	assert_int_equal(spool_confirm(sp, 3), 0); /* 4 is dated by the first record still */
	spool_status(sp, &ss);
	assert_int_equal(ss.oldest_age_ms, 5000);
	assert_int_equal(spool_confirm(sp, 4), 0);
	spool_status(sp, &ss);
	assert_int_equal(ss.oldest_age_ms, 3000);
	assert_int_equal(spool_close(sp), 0);

	/* the dates survive a restart */
	fx->seen.now += 10000;
	sp = open_spool(fx, 0, &st);
	assert_int_equal(st.replayed, 2);
	spool_status(sp, &ss);
	assert_int_equal(ss.oldest_age_ms, 13000);
	assert_int_equal(spool_confirm(sp, 6), 0);
	spool_status(sp, &ss);
	assert_int_equal(ss.oldest_age_ms, -1);
	assert_int_equal(spool_close(sp), 0);

	/*
	 * A segment from before time records: still replayed, and dated by
	 * its mtime. Build one by dropping the time records.
	 */
	remove_tree(fx->dir);
	assert_int_equal(mkdir(fx->dir, 0700), 0);
	sp = open_spool(fx, 0, &st);
	append_range(sp, 1, 5);
	assert_int_equal(spool_close(sp), 0);
	orig = read_file(seg_path(fx, 1), &len);
	assert_int_equal(len, TREC + 5 * rec);
	stripped = malloc(len);
	assert_non_null(stripped);
	memcpy(stripped, orig + TREC, len - TREC);
	n = len - TREC;
	write_file(seg_path(fx, 1), stripped, n);
	{
		struct timespec t[2] = {{.tv_sec = 1000}, {.tv_sec = 1000}};

		assert_int_equal(utimensat(AT_FDCWD, seg_path(fx, 1), t, 0), 0);
	}
	fx->seen.now = 1000 * 1000 + 42000;
	sp = open_spool(fx, 0, &st);
	assert_int_equal(st.replayed, 5);
	assert_int_equal(st.corrupt, 0);
	assert_seen_range(&fx->seen, 0, 1, 5);
	spool_status(sp, &ss);
	assert_int_equal(ss.oldest_age_ms, 42000);
	assert_int_equal(spool_close(sp), 0);
	free(stripped);
	free(orig);
}

static void check_dir_says_why(void **state)
{
	struct fixture *fx = *state;
	char path[256], why[256];

	assert_int_equal(spool_check_dir(fx->dir, why, sizeof(why)), 0);
	snprintf(path, sizeof(path), "%s/new/deeper", fx->dir);
	assert_int_equal(spool_check_dir(path, why, sizeof(why)), 0);
	assert_int_equal(access(path, F_OK), -1); /* nothing created */
	snprintf(path, sizeof(path), "%s/file", fx->dir);
	write_file(path, "x", 1);
	assert_int_equal(spool_check_dir(path, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is not a directory"));
	snprintf(path, sizeof(path), "%s/file/spool", fx->dir);
	assert_int_equal(spool_check_dir(path, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not a directory"));
	assert_int_equal(spool_check_dir("relative-and-missing", why, sizeof(why)), 0);
}

static void failing_replay_fails_the_open(void **state)
{
	struct fixture *fx = *state;
	const struct spool_params p = {.replay = on_replay, .ud = &fx->seen};
	struct spool_stats st;
	struct spool *sp;

	sp = open_spool(fx, 0, &st);
	append_range(sp, 1, 5);
	assert_int_equal(spool_close(sp), 0);
	seen_clear(&fx->seen);
	fx->seen.abort_at = 2;
	assert_null(spool_open(fx->dir, &p, &st));
	assert_int_equal(errno, ECANCELED);
	sp = open_spool(fx, 0, &st); /* unlocked, and nothing lost */
	assert_non_null(sp);
	assert_int_equal(st.replayed, 5);
	assert_int_equal(spool_close(sp), 0);
}

/*
 * The confirmation is only in an older segment, above a message in the newest
 * one (a damaged spool): the open deletes the older segment, so the newest
 * must not be appended to without it, or that message comes back at the next
 * open. Found by fuzz_spool.
 */
static void the_newest_segment_keeps_the_confirmation(void **state)
{
	struct fixture *fx = *state;
	unsigned char conf[SPOOL_RECORD_HEADER], msg[SPOOL_RECORD_HEADER + 3];
	struct spool_stats st;
	struct spool *sp;

	spool_record_header(conf, REC_CONFIRM, false, 100, NULL, 0);
	write_file(seg_path(fx, 1), conf, sizeof(conf));
	spool_record_header(msg, REC_MESSAGE, false, 50, "old", 3);
	memcpy(msg + SPOOL_RECORD_HEADER, "old", 3);
	write_file(seg_path(fx, 2), msg, sizeof(msg));

	sp = open_spool(fx, 0, &st);
	assert_non_null(sp);
	assert_int_equal(st.confirmed, 100);
	assert_int_equal(st.replayed, 0);
	append_range(sp, 101, 101);
	assert_int_equal(spool_close(sp), 0);

	sp = open_spool(fx, 0, &st);
	assert_non_null(sp);
	assert_int_equal(st.confirmed, 100);
	assert_int_equal(st.replayed, 1);
	assert_seen_range(&fx->seen, 0, 101, 101);
	assert_int_equal(spool_close(sp), 0);
}

/* A damaged time record dates a message at any time: the age neither overflows nor goes negative.
 */
static void absurd_dates_give_a_bounded_age(void **state)
{
	static const int64_t dates[] = {INT64_MIN + 2048, INT64_MAX - 2048};
	static const int64_t ages[] = {INT64_MAX, 0};
	struct fixture *fx = *state;
	unsigned char seg[2 * SPOOL_RECORD_HEADER + TIME_LEN + 3], *t = seg + HDR, *m;
	struct spool_status ss;
	struct spool_stats st;
	struct spool *sp;

	for (size_t i = 0; i < 2; i++) {
		spool_put_le(t, (uint64_t)dates[i], TIME_LEN);
		spool_record_header(seg, REC_TIME, false, 1, t, TIME_LEN);
		m = t + TIME_LEN;
		memcpy(m + HDR, "old", 3);
		spool_record_header(m, REC_MESSAGE, false, 1, m + HDR, 3);
		write_file(seg_path(fx, 1), seg, sizeof(seg));
		fx->seen.now = 1796660549742;
		sp = open_spool(fx, 0, &st);
		assert_non_null(sp);
		assert_int_equal(st.replayed, 1);
		spool_status(sp, &ss);
		assert_true(ss.oldest_age_ms == ages[i]);
		assert_int_equal(spool_close(sp), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(append_reopen_replays_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(confirmed_messages_are_not_replayed, setup, teardown),
	    cmocka_unit_test_setup_teardown(rotates_and_deletes_segments, setup, teardown),
	    cmocka_unit_test_setup_teardown(torn_tail_at_every_offset_keeps_earlier_records, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(flipped_byte_in_the_middle_costs_only_its_record, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(any_damaged_byte_costs_one_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(garbage_between_records_is_skipped, setup, teardown),
	    cmocka_unit_test_setup_teardown(record_inside_a_damaged_message_is_not_replayed, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(bad_header_in_an_older_segment, setup, teardown),
	    cmocka_unit_test_setup_teardown(seqs_that_do_not_grow_are_corruption, setup, teardown),
	    cmocka_unit_test_setup_teardown(disk_full_fails_cleanly, setup, teardown),
	    cmocka_unit_test_setup_teardown(open_errors_and_bad_arguments, setup, teardown),
	    cmocka_unit_test_setup_teardown(failing_replay_fails_the_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(unusable_segments_are_set_aside, setup, teardown),
	    cmocka_unit_test_setup_teardown(oldest_message_age, setup, teardown),
	    cmocka_unit_test_setup_teardown(check_dir_says_why, setup, teardown),
	    cmocka_unit_test_setup_teardown(the_newest_segment_keeps_the_confirmation, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(absurd_dates_give_a_bounded_age, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
