/*
 * libFuzzer target for the spool reader. The input describes up to four
 * segment files:
 *
 *	byte 0: bits 0-1 number of segments - 1; bit 7: fix the CRC of every
 *	        record that parses, so the fuzzer gets past the checksum;
 *	        bit 6: fix it at every magic, also after garbage, so that
 *	        replay has good records to resynchronise on
 *	then per segment but the last: a 16-bit little-endian length and the
 *	bytes; the last segment takes the rest.
 *
 * They are written to a private directory and opened. Recovery must not
 * crash or leak, must not fail, nor count more damage than there are bytes;
 * replay must give growing seqs above the confirmation, and
 * after one append and one confirm a second open must find exactly what the
 * first one left plus the new message, with no torn tail left to cut.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool.h"
#include "spool_format.h"

#define MAX_SEGS 4
#define MAX_SEEN 65536

static char dir[64];

struct seen {
	size_t n;
	uint64_t seq[MAX_SEEN];
	uint64_t confirmed;
};

static int on_replay(void *ud, uint64_t seq, const void *data, size_t len, bool binary)
{
	struct seen *s = ud;

	if (seq <= s->confirmed || (s->n && seq <= s->seq[s->n - 1]) || (len && !data))
		abort();
	if (s->n < MAX_SEEN)
		s->seq[s->n] = seq;
	s->n++;
	return 0;
}

static void on_warn(void *ud, const char *msg)
{
	if (!msg || !*msg)
		abort();
}

static void clean_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		abort();
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}

/* Give the record at off a good CRC; false when it does not fit. */
static bool fix_crc(unsigned char *p, size_t n, size_t off, size_t *len)
{
	uint32_t crc;

	*len = (size_t)p[off + 8] | (size_t)p[off + 9] << 8 | (size_t)p[off + 10] << 16 |
	       (size_t)p[off + 11] << 24;
	if (*len > n - off - SPOOL_RECORD_HEADER)
		return false;
	crc = spool_crc32c(spool_crc32c(0, p + off, 20), p + off + SPOOL_RECORD_HEADER, *len);
	for (int i = 0; i < 4; i++)
		p[off + 20 + i] = (unsigned char)(crc >> (8 * i));
	return true;
}

static void fix_crcs(unsigned char *p, size_t n, bool anywhere)
{
	size_t off = 0, len;

	if (anywhere) {
		for (off = 0; n - off >= SPOOL_RECORD_HEADER; off++)
			if (!memcmp(p + off, "WSQ1", 4))
				fix_crc(p, n, off, &len);
		return;
	}
	while (n - off >= SPOOL_RECORD_HEADER && !memcmp(p + off, "WSQ1", 4)) {
		if (!fix_crc(p, n, off, &len))
			break;
		off += SPOOL_RECORD_HEADER + len;
	}
}

static void write_segment(int i, const unsigned char *p, size_t n, bool fix, bool anywhere)
{
	static const uint64_t names[MAX_SEGS] = {1, 0x10, 0x100, 0x1000};
	unsigned char *copy = malloc(n ? n : 1);
	char path[128];
	FILE *f;

	if (!copy)
		abort();
	memcpy(copy, p, n);
	if (fix || anywhere)
		fix_crcs(copy, n, anywhere);
	snprintf(path, sizeof(path), "%s/seg-%016llx.wsq", dir, (unsigned long long)names[i]);
	f = fopen(path, "wb");
	if (!f || fwrite(copy, 1, n, f) != n || fclose(f) != 0)
		abort();
	free(copy);
}

static void remove_dir(void)
{
	clean_dir();
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* tmpfs when there is one: fsync is free there, and runs are ten times faster */
	snprintf(dir, sizeof(dir), "/dev/shm/fuzz-spool-XXXXXX");
	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof(dir), "/tmp/fuzz-spool-XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	atexit(remove_dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct seen first, second;
	struct spool_params p = {.segment_bytes = 256, .replay = on_replay, .warn = on_warn};
	struct spool_stats st, st2;
	struct spool_status ss;
	struct spool *sp;
	int nseg;
	bool fix, anywhere;
	uint64_t total = 0;
	uint64_t next, upto;

	if (size < 1)
		return 0;
	nseg = (data[0] & 3) + 1;
	fix = data[0] & 0x80;
	anywhere = data[0] & 0x40;
	data++;
	size--;
	for (int i = 0; i < nseg; i++) {
		size_t n = size;

		if (i < nseg - 1) {
			if (size < 2)
				break;
			n = (size_t)data[0] | (size_t)data[1] << 8;
			data += 2;
			size -= 2;
			if (n > size)
				n = size;
		}
		write_segment(i, data, n, fix, anywhere);
		total += n;
		data += n;
		size -= n;
	}

	memset(&first, 0, sizeof(first));
	p.ud = &first;
	sp = spool_open(dir, &p, &st);
	if (!sp)
		abort(); /* only I/O errors may fail an open, and there are none here */
	if (st.replayed != first.n || st.set_aside != 0)
		abort();
	/* what was skipped or cut off was there, and skipped bytes are some record's */
	spool_status(sp, &ss);
	if (st.skipped + st.truncated > total || ss.bytes > total + 4096 ||
	    !st.skipped != !st.skipped_records)
		abort();
	/* what the first open replayed is above what it found confirmed */
	if (first.n && first.seq[0] <= st.confirmed)
		abort();

	next = st.last_seq + 1;
	if (next == 0 || spool_append(sp, next, "fuzz", 4, false) != 0) {
		spool_close(sp);
		clean_dir();
		return 0; /* seq space exhausted: nothing more to check */
	}
	upto = first.n > 1 && first.n <= MAX_SEEN ? first.seq[0] : st.confirmed;
	if (spool_confirm(sp, upto) != 0 || spool_close(sp) != 0)
		abort();

	memset(&second, 0, sizeof(second));
	second.confirmed = upto > st.confirmed ? upto : st.confirmed;
	p.ud = &second;
	sp = spool_open(dir, &p, &st2);
	if (!sp || st2.truncated != 0)
		abort();
	if (first.n <= MAX_SEEN) {
		/* the first open's messages above the confirmation, then ours */
		size_t k = 0;

		for (size_t i = 0; i < first.n; i++)
			if (first.seq[i] > second.confirmed &&
			    (k >= second.n || second.seq[k++] != first.seq[i]))
				abort();
		if (k + 1 != second.n || second.seq[k] != next)
			abort();
	}
	spool_close(sp);
	clean_dir();
	return 0;
}
