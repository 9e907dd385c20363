#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { REC_MESSAGE = 1, REC_CONFIRM = 2, REC_TIME = 3 };
#define REC_FLAG_BINARY 0x01
#define HDR SPOOL_RECORD_HEADER
#define CRC_OFFSET 20
#define SEG_NAME_SIZE 32 /* "seg-" 16 hex ".wsq" NUL, rounded up */
#define ZERO_CHUNK (64 * 1024)
#define TIME_LEN 8
#define MARK_INTERVAL_MS 1000
#define BAD_SUFFIXES 10 /* NAME.bad, NAME.bad.1 ... NAME.bad.9 */

static const unsigned char rec_magic[4] = {'W', 'S', 'Q', '1'};

struct segment {
	uint64_t name;	  /* the seq in its file name */
	uint64_t max_seq; /* highest message seq in it; 0: none */
	uint64_t size;	  /* bytes in the file */
	uint64_t valid;	  /* recovery: where a torn tail starts (size when none) */
	int64_t mtime_ms; /* recovery: dates messages before its first time record */
	bool marked;	  /* active: a time record was written to it since the open */
	bool readonly;	  /* recovery: cannot be appended to */
};

/* Messages from seq on were appended at ms (until the next mark). */
struct mark {
	uint64_t seq;
	int64_t ms;
};

struct spool {
	char *dir;
	int dirfd;	      /* holds the lock */
	int fd;		      /* newest segment, open for appending, or -1 */
	bool broken;	      /* fd's segment may hold a bad record or lost data */
	bool dirty;	      /* fd has data not yet fdatasync'ed */
	bool dir_dirty;	      /* a segment was created since the last directory fsync */
	struct segment *segs; /* in name order; when fd >= 0 the last one is fd's */
	size_t nsegs, segs_cap;
	size_t segment_bytes;
	uint64_t last_seq, confirmed, bytes;
	uint64_t max_msg;   /* highest message seq on disk */
	uint64_t seq_floor; /* numbering stays above the seqs of set-aside segments */
	unsigned char *scratch;
	size_t scratch_cap;
	unsigned char *window; /* resync reads ZERO_CHUNK bytes at a time into it */
	struct mark *marks;    /* ascending seqs; marks[0] dates the oldest unconfirmed message */
	size_t nmarks, marks_cap;
	int64_t last_mark_ms;
	/* for spool_status */
	uint64_t skipped_records, skipped_bytes;
	size_t set_aside;
	bool failing;
	int fail_errno;
	char last_error[256];
	spool_warn_fn warn;
	spool_clock_fn clock;
	void *ud;
};

/* Reflected Castagnoli polynomial 0x82f63b78. */
/* clang-format off */
static const uint32_t crc32c_table[256] = {
	0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c,
	0x26a1e7e8, 0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b,
	0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c,
	0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
	0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc,
	0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a,
	0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
	0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
	0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad,
	0x1642ae59, 0xe4292d5a, 0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a,
	0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595, 0x417b1dbc, 0xb3109ebf,
	0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
	0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f,
	0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
	0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f,
	0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
	0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e,
	0x4767748a, 0xb50cf789, 0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859,
	0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46, 0x7198540d, 0x83f3d70e,
	0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
	0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
	0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c,
	0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4,
	0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
	0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b,
	0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c,
	0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6, 0x502036a5,
	0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
	0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975,
	0x0e330a81, 0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d,
	0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905,
	0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
	0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8,
	0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff,
	0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
	0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
	0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78,
	0x7fab5e8c, 0x8dc0dd8f, 0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee,
	0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1, 0x69e9f0d5, 0x9b8273d6,
	0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
	0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69,
	0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
	0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};
/* clang-format on */

uint32_t spool_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	crc = ~crc;
	while (len--)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

#if defined(__x86_64__)
/* SSE 4.2 has CRC-32C in hardware: about ten times the table's speed */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *data,
							    size_t len)
{
	const unsigned char *p = data;
	uint64_t c = ~crc;

	for (; len >= 8; len -= 8, p += 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	crc = (uint32_t)c;
	while (len--)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return ~crc;
}
#endif

uint32_t spool_crc32c(uint32_t crc, const void *data, size_t len)
{
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_hw(crc, data, len);
#endif
	return spool_crc32c_sw(crc, data, len);
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

struct record {
	int type;
	bool binary;
	uint32_t len;
	uint64_t seq;
	uint32_t crc;
};

static void record_header(unsigned char h[HDR], int type, bool binary, uint64_t seq,
			  const void *data, uint32_t len)
{
	memcpy(h, rec_magic, 4);
	h[4] = (unsigned char)type;
	h[5] = binary ? REC_FLAG_BINARY : 0;
	h[6] = h[7] = 0;
	put_le(h + 8, len, 4);
	put_le(h + 12, seq, 8);
	put_le(h + CRC_OFFSET, spool_crc32c(spool_crc32c(0, h, CRC_OFFSET), data, len), 4);
}

/* NULL when the header is well-formed, else what is wrong with it. */
static const char *record_parse(const unsigned char h[HDR], struct record *r)
{
	if (memcmp(h, rec_magic, 4) != 0)
		return "bad magic";
	r->type = h[4];
	r->binary = h[5] & REC_FLAG_BINARY;
	r->len = (uint32_t)get_le(h + 8, 4);
	r->seq = get_le(h + 12, 8);
	r->crc = (uint32_t)get_le(h + CRC_OFFSET, 4);
	if (h[6] || h[7])
		return "bad reserved bytes";
	switch (r->type) {
	case REC_MESSAGE:
		if (h[5] & ~REC_FLAG_BINARY)
			return "bad flags";
		return NULL;
	case REC_CONFIRM:
		if (h[5] || r->len)
			return "bad confirm record";
		return NULL;
	case REC_TIME:
		if (h[5] || r->len != TIME_LEN)
			return "bad time record";
		return NULL;
	}
	return "bad record type";
}

static bool record_crc_ok(const unsigned char h[HDR], const struct record *r,
			  const unsigned char *payload)
{
	return spool_crc32c(spool_crc32c(0, h, CRC_OFFSET), payload, r->len) == r->crc;
}

static void seg_name(char buf[SEG_NAME_SIZE], uint64_t name)
{
	snprintf(buf, SEG_NAME_SIZE, "seg-%016" PRIx64 ".wsq", name);
}

static bool seg_parse_name(const char *s, uint64_t *name)
{
	uint64_t v = 0;

	if (strlen(s) != 24 || strncmp(s, "seg-", 4) != 0 || strcmp(s + 20, ".wsq") != 0)
		return false;
	for (int i = 4; i < 20; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint64_t)(c - 'a' + 10);
		else
			return false; /* lower case only: one name per seq */
	}
	*name = v;
	return true;
}

static void copy_text(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Every warning is also the last error that status shows. */
__attribute__((format(printf, 2, 3))) static void spool_warnf(struct spool *sp, const char *fmt,
							      ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	copy_text(sp->last_error, sizeof(sp->last_error), msg);
	if (sp->warn)
		sp->warn(sp->ud, msg);
}

static int64_t now_ms(const struct spool *sp)
{
	struct timespec ts;

	if (sp->clock)
		return sp->clock(sp->ud);
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Remember that messages from seq on date from ms. Best effort: without
 * memory the oldest message's age is only less precise.
 */
static void add_mark(struct spool *sp, uint64_t seq, int64_t ms)
{
	if (sp->nmarks && sp->marks[sp->nmarks - 1].seq >= seq) {
		if (sp->marks[sp->nmarks - 1].seq == seq)
			sp->marks[sp->nmarks - 1].ms = ms; /* a retried append */
		return;
	}
	if (sp->nmarks == sp->marks_cap) {
		size_t cap = sp->marks_cap ? sp->marks_cap * 2 : 16;
		struct mark *m = reallocarray(sp->marks, cap, sizeof(*m));

		if (!m)
			return;
		sp->marks = m;
		sp->marks_cap = cap;
	}
	sp->marks[sp->nmarks++] = (struct mark){seq, ms};
}

/* Forget the marks before the one that dates the first unconfirmed message. */
static void prune_marks(struct spool *sp)
{
	size_t i = 0;

	while (i + 1 < sp->nmarks && sp->marks[i + 1].seq <= sp->confirmed + 1)
		i++;
	if (i) {
		memmove(sp->marks, sp->marks + i, (sp->nmarks - i) * sizeof(sp->marks[0]));
		sp->nmarks -= i;
	}
}

static int read_at(int fd, void *buf, size_t n, uint64_t off)
{
	unsigned char *p = buf;

	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO; /* the file shrank under us */
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int scratch_reserve(struct spool *sp, size_t n)
{
	unsigned char *p;

	if (n <= sp->scratch_cap)
		return 0;
	p = realloc(sp->scratch, n);
	if (!p)
		return -1;
	sp->scratch = p;
	sp->scratch_cap = n;
	return 0;
}

static int segs_reserve(struct spool *sp)
{
	struct segment *s;
	size_t cap;

	if (sp->nsegs < sp->segs_cap)
		return 0;
	cap = sp->segs_cap ? sp->segs_cap * 2 : 16;
	s = reallocarray(sp->segs, cap, sizeof(*s));
	if (!s)
		return -1;
	sp->segs = s;
	sp->segs_cap = cap;
	return 0;
}

static struct segment *active(struct spool *sp)
{
	return sp->fd >= 0 ? &sp->segs[sp->nsegs - 1] : NULL;
}

static void close_active(struct spool *sp)
{
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
	sp->dirty = false;
	sp->broken = false;
}

/*
 * Append one record to the active segment. On failure, cut the file back to
 * where the record began, so that no half record stays in front of later
 * ones. Either way the segment is retired: the next append starts a new one,
 * and trim() deletes this one once its messages are confirmed.
 */
static int write_record(struct spool *sp, int type, bool binary, uint64_t seq, const void *data,
			size_t len)
{
	struct segment *sg = active(sp);
	unsigned char h[HDR];
	struct iovec iov[2];
	size_t total = HDR + len, done = 0;
	int saved;

	record_header(h, type, binary, seq, data, (uint32_t)len);
	iov[0] = (struct iovec){.iov_base = h, .iov_len = HDR};
	iov[1] = (struct iovec){.iov_base = (void *)data, .iov_len = len};
	while (done < total) {
		struct iovec v[2];
		int n = 0;
		ssize_t w;

		if (done < HDR) {
			v[n++] = (struct iovec){.iov_base = h + done, .iov_len = HDR - done};
			if (len)
				v[n++] = iov[1];
		} else {
			v[n++] = (struct iovec){.iov_base = (unsigned char *)data + (done - HDR),
						.iov_len = total - done};
		}
		w = writev(sp->fd, v, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (w == 0) {
			errno = EIO;
			goto fail;
		}
		done += (size_t)w;
	}
	sg->size += total;
	sp->bytes += total;
	sp->dirty = true;
	return 0;

fail:
	saved = errno;
	if (done > 0 && ftruncate(sp->fd, (off_t)sg->size) < 0)
		(void)0; /* the CRC makes the half record unreadable anyway */
	/*
	 * Retire the segment: a full disk (ENOSPC, EDQUOT, EFBIG) frees up only
	 * when whole segments are deleted, and trim() keeps a healthy active one.
	 */
	sp->broken = true;
	errno = saved;
	return -1;
}

static void seg_forget(struct spool *sp, size_t i)
{
	sp->bytes -= sp->segs[i].size;
	memmove(&sp->segs[i], &sp->segs[i + 1], (sp->nsegs - i - 1) * sizeof(sp->segs[0]));
	sp->nsegs--;
}

/*
 * Delete a segment file whose messages are all confirmed; i is its index.
 * One that cannot be deleted (immutable, read-only) is forgotten all the
 * same: retrying at every confirmation would only repeat the warning.
 */
static void seg_delete(struct spool *sp, size_t i)
{
	char name[SEG_NAME_SIZE];

	seg_name(name, sp->segs[i].name);
	if (unlinkat(sp->dirfd, name, 0) < 0 && errno != ENOENT)
		spool_warnf(sp,
			    "%s/%s: cannot delete it (%s); every message in it was sent: "
			    "left behind",
			    sp->dir, name, strerror(errno));
	seg_forget(sp, i);
}

/*
 * Delete the segments whose messages are all confirmed. The active one goes
 * only when full (it would be retired anyway); keeping it otherwise avoids a
 * create and a directory fsync every time the queue drains.
 */
static void trim(struct spool *sp)
{
	size_t i = 0;

	while (i < sp->nsegs) {
		struct segment *sg = &sp->segs[i];
		bool is_active = sp->fd >= 0 && i == sp->nsegs - 1;

		if (sg->max_seq > sp->confirmed ||
		    (is_active && sg->size < sp->segment_bytes && !sp->broken)) {
			i++;
			continue;
		}
		if (is_active)
			close_active(sp);
		seg_delete(sp, i);
	}
}

/*
 * Make sure there is an active segment with room; a new one is named at
 * least want and above every existing name, and starts with the latest
 * confirmation so that the newest segment always holds it.
 */
static int ensure_segment(struct spool *sp, uint64_t want)
{
	char name[SEG_NAME_SIZE];
	struct segment *sg = active(sp);
	uint64_t n = want;
	int fd;

	if (sg && !sp->broken && sg->size < sp->segment_bytes)
		return 0;
	if (sg) {
		/* its records must be durable before we stop syncing it */
		if (sp->dirty && fdatasync(sp->fd) < 0) {
			sp->broken = true;
			return -1;
		}
		close_active(sp);
		trim(sp);
	}
	if (sp->nsegs && sp->segs[sp->nsegs - 1].name >= n)
		n = sp->segs[sp->nsegs - 1].name + 1;
	if (n == 0) {
		errno = EOVERFLOW; /* seq space used up: names would no longer sort */
		return -1;
	}
	if (segs_reserve(sp) < 0)
		return -1;
	seg_name(name, n);
	fd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	sp->segs[sp->nsegs++] = (struct segment){.name = n};
	sp->last_mark_ms = 0;
	sp->fd = fd;
	sp->dirty = false;
	sp->broken = false;
	sp->dir_dirty = true;
	if (sp->confirmed && write_record(sp, REC_CONFIRM, false, sp->confirmed, NULL, 0) < 0)
		return -1;
	return 0;
}

/* Date the message about to be appended, when the last date is stale or in another segment. */
static int mark_time(struct spool *sp, uint64_t seq)
{
	struct segment *sg = active(sp);
	int64_t now = now_ms(sp);
	unsigned char b[TIME_LEN];

	if (sg->marked && now >= sp->last_mark_ms && now - sp->last_mark_ms < MARK_INTERVAL_MS)
		return 0;
	put_le(b, (uint64_t)now, TIME_LEN);
	if (write_record(sp, REC_TIME, false, seq, b, TIME_LEN) < 0)
		return -1;
	sg->marked = true;
	sp->last_mark_ms = now;
	add_mark(sp, seq, now);
	return 0;
}

int spool_append(struct spool *sp, uint64_t seq, const void *data, size_t len, bool binary)
{
	int saved;

	if (!sp || (!data && len) || seq == 0 || seq <= sp->last_seq) {
		errno = EINVAL;
		return -1;
	}
	if (len > UINT32_MAX || len > SIZE_MAX - HDR) {
		errno = EMSGSIZE;
		return -1;
	}
	if (ensure_segment(sp, seq) < 0 || mark_time(sp, seq) < 0 ||
	    write_record(sp, REC_MESSAGE, binary, seq, data, len) < 0) {
		saved = errno;
		if (!sp->failing || sp->fail_errno != saved)
			snprintf(sp->last_error, sizeof(sp->last_error),
				 "%s: cannot write a message: %s", sp->dir, strerror(saved));
		sp->failing = true;
		sp->fail_errno = saved;
		errno = saved;
		return -1;
	}
	sp->failing = false;
	sp->last_seq = sp->max_msg = seq;
	active(sp)->max_seq = seq;
	return 0;
}

int spool_sync(struct spool *sp)
{
	int rc = 0, saved = 0;

	if (!sp) {
		errno = EINVAL;
		return -1;
	}
	if (sp->dirty && sp->fd >= 0 && fdatasync(sp->fd) < 0) {
		/* the kernel may have dropped the pages: start afresh next time */
		saved = errno;
		rc = -1;
		sp->broken = true;
	}
	sp->dirty = false;
	if (sp->dir_dirty) {
		if (fsync(sp->dirfd) < 0) {
			saved = errno;
			rc = -1;
		} else {
			sp->dir_dirty = false;
		}
	}
	errno = saved;
	return rc;
}

bool spool_dirty(const struct spool *sp)
{
	return sp && ((sp->dirty && sp->fd >= 0) || sp->dir_dirty);
}

int spool_confirm(struct spool *sp, uint64_t seq)
{
	if (!sp) {
		errno = EINVAL;
		return -1;
	}
	if (seq <= sp->confirmed)
		return 0;
	sp->confirmed = seq;
	if (seq > sp->last_seq)
		sp->last_seq = seq; /* a message at or below it would be lost at the next open */
	prune_marks(sp);
	trim(sp);
	if (sp->nsegs == 0)
		return 0; /* nothing left on disk that this confirmation could filter */
	if (sp->fd >= 0 && !sp->broken)
		return write_record(sp, REC_CONFIRM, false, seq, NULL, 0);
	return ensure_segment(sp, sp->last_seq + 1);
}

uint64_t spool_bytes(const struct spool *sp)
{
	return sp ? sp->bytes : 0;
}

size_t spool_segments(const struct spool *sp)
{
	return sp ? sp->nsegs : 0;
}

void spool_status(const struct spool *sp, struct spool_status *out)
{
	*out = (struct spool_status){.oldest_age_ms = -1};
	if (!sp)
		return;
	out->bytes = sp->bytes;
	out->segments = sp->nsegs;
	if (sp->max_msg > sp->confirmed && sp->nmarks) {
		int64_t age = now_ms(sp) - sp->marks[0].ms;

		out->oldest_age_ms = age < 0 ? 0 : age; /* the clock went back */
	}
	out->holding = sp->failing;
	out->disk_full = sp->failing && (sp->fail_errno == ENOSPC || sp->fail_errno == EDQUOT ||
					 sp->fail_errno == EFBIG);
	out->skipped_records = sp->skipped_records;
	out->skipped_bytes = sp->skipped_bytes;
	out->set_aside = sp->set_aside;
	memcpy(out->last_error, sp->last_error, sizeof(out->last_error));
}

static void spool_free(struct spool *sp)
{
	if (sp->fd >= 0)
		close(sp->fd);
	if (sp->dirfd >= 0)
		close(sp->dirfd); /* releases the lock */
	free(sp->segs);
	free(sp->scratch);
	free(sp->window);
	free(sp->marks);
	free(sp->dir);
	free(sp);
}

int spool_close(struct spool *sp)
{
	int rc, saved;

	if (!sp)
		return 0;
	rc = spool_sync(sp);
	saved = errno;
	spool_free(sp);
	errno = saved;
	return rc;
}

/* mkdir -p, new components mode 0700. */
static int make_dirs(const char *dir)
{
	char *p = strdup(dir);
	struct stat st;
	int saved;

	if (!p)
		return -1;
	for (char *s = p + 1;; s++) {
		bool end = *s == '\0';

		if (!end && *s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST &&
		    (stat(p, &st) < 0 || !S_ISDIR(st.st_mode))) {
			saved = errno;
			free(p);
			errno = saved;
			return -1;
		}
		if (end)
			break;
		*s = '/';
	}
	free(p);
	return 0;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct segment *x = a, *y = b;

	return x->name < y->name ? -1 : x->name > y->name;
}

/* "seg-<16 hex>.wsq.bad..." as set_aside names it; *name is the seq in it. */
static bool seg_parse_bad_name(const char *s, uint64_t *name)
{
	char head[25];

	if (strlen(s) < 28 || strncmp(s + 24, ".bad", 4) != 0)
		return false;
	memcpy(head, s, 24);
	head[24] = '\0';
	return seg_parse_name(head, name);
}

static void raise_floor(struct spool *sp, uint64_t name, uint64_t size)
{
	uint64_t top = name > UINT64_MAX - size ? UINT64_MAX : name + size;

	if (top > sp->seq_floor)
		sp->seq_floor = top;
}

/*
 * A segment that cannot be used: rename it to NAME.bad (NAME.bad.N when
 * taken) so that the next start does not trip over it again, or leave it.
 * Its seqs are unknown; every record takes more than one byte, so none is
 * above its name plus its size: numbering goes on above that.
 */
static void set_aside(struct spool *sp, uint64_t name, uint64_t size, const char *what, int err)
{
	char from[SEG_NAME_SIZE], to[SEG_NAME_SIZE + 8], cause[160] = "";
	int rerr = EEXIST;

	seg_name(from, name);
	if (err)
		snprintf(cause, sizeof(cause), " (%s)", strerror(err));
	for (int i = 0; i < BAD_SUFFIXES && rerr == EEXIST; i++) {
		if (i)
			snprintf(to, sizeof(to), "%s.bad.%d", from, i);
		else
			snprintf(to, sizeof(to), "%s.bad", from);
		/* we hold the lock: nobody else creates names in the directory */
		if (faccessat(sp->dirfd, to, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		rerr = renameat(sp->dirfd, from, sp->dirfd, to) == 0 ? 0 : errno;
	}
	if (!rerr)
		spool_warnf(sp, "%s/%s %s%s: set aside as %s; its messages are not sent", sp->dir,
			    from, what, cause, to);
	else
		spool_warnf(sp,
			    "%s/%s %s%s, and cannot be renamed (%s): skipped; its messages are "
			    "not sent",
			    sp->dir, from, what, cause, strerror(rerr));
	raise_floor(sp, name, size);
	sp->set_aside++;
}

/*
 * Find the segment files; *max_name is the highest name seen. Files that
 * are not regular are set aside at once.
 */
static int list_segments(struct spool *sp, uint64_t *max_name)
{
	DIR *d;
	struct dirent *e;
	struct stat st;
	int fd, saved;

	fd = openat(sp->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	d = fdopendir(fd);
	if (!d) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	for (;;) {
		uint64_t name;

		errno = 0;
		e = readdir(d);
		if (!e)
			break;
		if (seg_parse_bad_name(e->d_name, &name)) {
			/* it may be put back once repaired: keep its seqs unused */
			if (fstatat(sp->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
				raise_floor(sp, name,
					    S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0);
			continue;
		}
		if (!seg_parse_name(e->d_name, &name))
			continue;
		if (name > *max_name)
			*max_name = name;
		if (fstatat(sp->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			set_aside(sp, name, 0, "cannot be examined", errno);
			continue;
		}
		if (!S_ISREG(st.st_mode)) {
			set_aside(sp, name, 0, "is not a regular file", 0);
			continue;
		}
		if (segs_reserve(sp) < 0)
			goto fail;
		sp->segs[sp->nsegs++] = (struct segment){
		    .name = name,
		    .size = (uint64_t)st.st_size,
		    .mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000,
		};
	}
	if (errno)
		goto fail;
	closedir(d);
	if (sp->nsegs > 1)
		qsort(sp->segs, sp->nsegs, sizeof(sp->segs[0]), seg_cmp);
	return 0;

fail:
	saved = errno;
	closedir(d);
	errno = saved;
	return -1;
}

struct scan {
	const char *why;	 /* the first damage, NULL: every record is good */
	uint64_t first_bad;	 /* its offset */
	uint64_t records, bytes; /* skipped, all damage */
	bool tail;		 /* the last damage runs to the end and looks like a torn write */
	uint64_t tail_records, tail_bytes;
};

static int all_zero(struct spool *sp, int fd, uint64_t off, uint64_t end, bool *zero)
{
	*zero = false;
	if (scratch_reserve(sp, ZERO_CHUNK) < 0)
		return -1;
	while (off < end) {
		size_t n = end - off < ZERO_CHUNK ? (size_t)(end - off) : ZERO_CHUNK;

		if (read_at(fd, sp->scratch, n, off) < 0)
			return -1;
		for (size_t i = 0; i < n; i++)
			if (sp->scratch[i])
				return 0;
		off += n;
	}
	*zero = true;
	return 0;
}

enum rd { RD_OK, RD_BAD, RD_ERR };

/*
 * Read the record at off: RD_OK with its payload in sp->scratch, RD_BAD with
 * why (torn: as a cut-short write leaves it; len_ok: only the CRC is wrong,
 * so its length may still be right), or RD_ERR with errno.
 */
static enum rd read_record(struct spool *sp, int fd, uint64_t off, uint64_t end, struct record *r,
			   const char **why, bool *torn, bool *len_ok)
{
	unsigned char h[HDR];

	*torn = *len_ok = false;
	if (end - off < HDR) {
		*why = "short record header";
		*torn = true;
		return RD_BAD;
	}
	if (read_at(fd, h, HDR, off) < 0)
		return RD_ERR;
	*why = record_parse(h, r);
	if (*why)
		return RD_BAD;
	if (r->len > end - off - HDR) {
		*why = "record longer than the file";
		*torn = true;
		return RD_BAD;
	}
	if (scratch_reserve(sp, r->len) < 0 || read_at(fd, sp->scratch, r->len, off + HDR) < 0)
		return RD_ERR;
	if (!record_crc_ok(h, r, sp->scratch)) {
		*why = "bad CRC";
		*torn = off + HDR + r->len == end;
		*len_ok = true;
		return RD_BAD;
	}
	return RD_OK;
}

/* The next good record after off, or end; *records counts the bad record starts passed over. */
static int scan_for_record(struct spool *sp, int fd, uint64_t off, uint64_t end, uint64_t *next,
			   uint64_t *records)
{
	struct record r;
	const char *why;
	bool torn, len_ok;
	enum rd k;

	if (!sp->window && !(sp->window = malloc(ZERO_CHUNK)))
		return -1;
	for (uint64_t pos = off + 1; pos < end;) {
		size_t n = end - pos < ZERO_CHUNK ? (size_t)(end - pos) : ZERO_CHUNK;
		const unsigned char *w = sp->window, *hit;

		if (read_at(fd, sp->window, n, pos) < 0)
			return -1;
		while ((hit = memmem(w, n - (size_t)(w - sp->window), rec_magic, 4))) {
			*next = pos + (uint64_t)(hit - sp->window);
			k = read_record(sp, fd, *next, end, &r, &why, &torn, &len_ok);
			if (k != RD_BAD)
				return k == RD_OK ? 0 : -1;
			(*records)++;
			w = hit + 1;
		}
		if (n < ZERO_CHUNK)
			break;
		pos += n - 3; /* a magic across the boundary */
	}
	*next = end;
	return 0;
}

/* Do good records lead from q, one after the other, exactly to to? */
static int chain_reaches(struct spool *sp, int fd, uint64_t q, uint64_t to, uint64_t end, bool *yes)
{
	struct record r;
	const char *why;
	bool torn, len_ok;
	enum rd k = RD_OK;

	while (q < to && (k = read_record(sp, fd, q, end, &r, &why, &torn, &len_ok)) == RD_OK)
		q += HDR + r.len;
	*yes = q == to;
	return k == RD_ERR ? -1 : 0;
}

/*
 * Where reading goes on after a damaged record at off: at the next offset
 * where a good record starts, or at end. When only the CRC is bad (bad), its
 * length may be right or damaged: if it leads to a good record and the good
 * records found before that do not lead there too, they are inside the
 * damaged payload (a message that holds spool records), so skip to it.
 * *records counts the record starts passed over, the damaged one included.
 */
static int resync(struct spool *sp, int fd, uint64_t off, uint64_t end, const struct record *bad,
		  uint64_t *next, uint64_t *records)
{
	uint64_t after = bad ? off + HDR + bad->len : end;
	struct record r;
	const char *why;
	bool torn, len_ok, chained;
	enum rd k = RD_BAD;

	*records = 1;
	if (bad)
		k = after == end ? RD_OK
				 : read_record(sp, fd, after, end, &r, &why, &torn, &len_ok);
	if (k == RD_ERR || scan_for_record(sp, fd, off, end, next, records) < 0)
		return -1;
	if (k != RD_OK || *next >= after)
		return 0;
	if (chain_reaches(sp, fd, *next, after, end, &chained) < 0)
		return -1;
	if (!chained) {
		*next = after;
		*records = 1;
	}
	return 0;
}

/* Skip the damage at *off; the first pass notes it in sc and sg->valid. */
static int skip_damage(struct spool *sp, int fd, uint64_t *off, uint64_t end, const char *why,
		       bool torn, const struct record *bad, struct segment *sg, struct scan *sc)
{
	uint64_t next, records;
	bool zero;

	if (resync(sp, fd, *off, end, bad, &next, &records) < 0)
		return -1;
	if (next == end && !torn) {
		if (all_zero(sp, fd, *off, end, &zero) < 0)
			return -1;
		if (zero) {
			why = "zeros";
			torn = true;
		}
	}
	if (!sc->why) {
		sc->why = why;
		sc->first_bad = *off;
	}
	sc->records += records;
	sc->bytes += next - *off;
	if (next == end) {
		sc->tail = torn;
		sc->tail_records = records;
		sc->tail_bytes = next - *off;
		sg->valid = *off;
	}
	*off = next;
	return 0;
}

/*
 * Read sg's records, skipping damaged ones. First pass (p NULL): set
 * sg->max_seq and sg->valid, check that seqs grow (*prev), collect the
 * highest confirmation (*confirmed) and the time marks, and describe the
 * damage in sc. Second pass: hand the messages above sp->confirmed and *prev
 * to replay; the same records are skipped, as the file is the same.
 */
static int scan_segment(struct spool *sp, int fd, struct segment *sg, uint64_t *prev,
			uint64_t *confirmed, struct scan *sc, const struct spool_params *p,
			struct spool_stats *st)
{
	uint64_t off = 0, end = sg->size;
	bool dated = false;
	struct record r;

	*sc = (struct scan){0};
	if (!p)
		sg->valid = end;
	while (off < end) {
		const char *why;
		bool torn, len_ok;
		enum rd k = read_record(sp, fd, off, end, &r, &why, &torn, &len_ok);

		if (k == RD_ERR)
			return -1;
		if (k == RD_BAD) {
			if (skip_damage(sp, fd, &off, end, why, torn, len_ok ? &r : NULL, sg, sc) <
			    0)
				return -1;
			continue;
		}
		off += HDR + r.len;
		if (r.type == REC_CONFIRM || r.type == REC_TIME) {
			if (p)
				continue;
			if (r.type == REC_CONFIRM && r.seq > *confirmed)
				*confirmed = r.seq;
			if (r.type == REC_TIME) {
				add_mark(sp, r.seq, (int64_t)get_le(sp->scratch, TIME_LEN));
				dated = true;
			}
			continue;
		}
		if (r.seq <= *prev) {
			if (!p) {
				if (!sc->why) {
					sc->why = "message seq does not grow";
					sc->first_bad = off - HDR - r.len;
				}
				sc->records++;
				sc->bytes += HDR + r.len;
			}
			continue;
		}
		*prev = r.seq;
		if (!p) {
			if (!dated)
				add_mark(sp, r.seq, sg->mtime_ms); /* written before time records */
			dated = true;
			sg->max_seq = r.seq;
		} else if (r.seq > sp->confirmed) {
			if (p->replay &&
			    p->replay(p->ud, r.seq, sp->scratch, r.len, r.binary) != 0) {
				errno = ECANCELED;
				return -1;
			}
			st->replayed++;
			st->replayed_bytes += r.len;
		}
	}
	return 0;
}

/*
 * Segment i cannot be used: set it aside and drop it from the list
 * (counted: its bytes are in sp->bytes). 1, or -1 for what must fail the
 * open: no memory, or the replay callback.
 */
static int give_up(struct spool *sp, size_t i, const char *what, bool counted)
{
	int err = errno;

	if (err == ENOMEM || err == ECANCELED)
		return -1;
	set_aside(sp, sp->segs[i].name, sp->segs[i].size, what, err);
	if (!counted)
		sp->bytes += sp->segs[i].size;
	seg_forget(sp, i);
	return 1;
}

/* Report the damage of segment i (fd open on it) and cut a torn tail off the newest one. */
static void report_damage(struct spool *sp, size_t i, int fd, const struct scan *sc,
			  struct spool_stats *st)
{
	struct segment *sg = &sp->segs[i];
	bool cut = fd == sp->fd && sc->tail && ftruncate(fd, (off_t)sg->valid) == 0;
	uint64_t recs = sc->records - (cut ? sc->tail_records : 0);
	uint64_t bytes = sc->bytes - (cut ? sc->tail_bytes : 0);
	char name[SEG_NAME_SIZE], tail[96] = "";

	seg_name(name, sg->name);
	st->corrupt++;
	sp->skipped_records += sc->records;
	sp->skipped_bytes += sc->bytes;
	st->skipped_records += recs;
	st->skipped += bytes;
	if (cut) {
		st->truncated += sc->tail_bytes;
		sp->bytes -= sg->size - sg->valid;
		sg->size = sg->valid;
		sp->dirty = true; /* make the cut durable at the next sync */
		snprintf(tail, sizeof(tail), "torn tail, %" PRIu64 " bytes cut off",
			 sc->tail_bytes);
	}
	if (!bytes)
		spool_warnf(sp, "%s/%s: %s at offset %" PRIu64 ": %s", sp->dir, name, sc->why,
			    sc->first_bad, tail);
	else
		spool_warnf(sp,
			    "%s/%s: %s at offset %" PRIu64 ": %" PRIu64
			    " damaged record(s), %" PRIu64 " bytes, skipped; the records "
			    "around them are kept%s%s",
			    sp->dir, name, sc->why, sc->first_bad, recs, bytes, cut ? "; " : "",
			    tail);
	/*
	 * Leave the evidence as it is, and new records out of its reach (a
	 * damaged length could claim them): they go to a new segment.
	 */
	if (fd == sp->fd && (!cut || bytes))
		close_active(sp);
}

/*
 * First pass over segment i: open it (the newest one for appending when it
 * can be written), check it, and note its damage. 0: kept, 1: set aside and
 * dropped from the list, -1: the open must fail.
 */
static int check_segment(struct spool *sp, size_t i, uint64_t *prev, uint64_t *confirmed,
			 struct spool_stats *st)
{
	struct segment *sg = &sp->segs[i];
	bool last = i == sp->nsegs - 1;
	char name[SEG_NAME_SIZE];
	int fd, werr = 0;
	struct scan sc;
	struct stat s;

	seg_name(name, sg->name);
	fd =
	    openat(sp->dirfd, name, (last ? O_RDWR | O_APPEND : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && last && (errno == EACCES || errno == EPERM || errno == EROFS)) {
		werr = errno; /* immutable or read-only: its messages can still be read */
		fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0)
		return give_up(sp, i, "cannot be opened", false);
	if (fstat(fd, &s) < 0 || (sg->size = (uint64_t)s.st_size,
				  scan_segment(sp, fd, sg, prev, confirmed, &sc, NULL, st) < 0)) {
		int saved = errno;

		close(fd);
		errno = saved;
		return give_up(sp, i, "cannot be read", false);
	}
	sp->bytes += sg->size;
	if (werr)
		spool_warnf(sp,
			    "%s/%s cannot be written (%s): its messages are sent, new ones go "
			    "to a new segment",
			    sp->dir, name, strerror(werr));
	if (last && !werr)
		sp->fd = fd;
	if (sc.why)
		report_damage(sp, i, fd, &sc, st);
	if (fd != sp->fd)
		close(fd);
	return 0;
}

/* Second pass over segment i: replay. 0, 1: set aside, -1: the open must fail. */
static int replay_segment(struct spool *sp, size_t i, uint64_t *prev, const struct spool_params *p,
			  struct spool_stats *st)
{
	struct segment *sg = &sp->segs[i];
	bool is_active = sp->fd >= 0 && i == sp->nsegs - 1;
	char name[SEG_NAME_SIZE];
	uint64_t unused = 0;
	struct scan sc;
	int fd = sp->fd, saved;

	if (sg->max_seq <= sp->confirmed)
		return 0;
	if (!is_active) {
		seg_name(name, sg->name);
		fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return give_up(sp, i, "cannot be opened", true);
	}
	if (scan_segment(sp, fd, sg, prev, &unused, &sc, p, st) < 0) {
		saved = errno;
		if (is_active)
			close_active(sp);
		else
			close(fd);
		errno = saved;
		return give_up(sp, i, "cannot be read", true);
	}
	if (!is_active)
		close(fd);
	return 0;
}

/*
 * Check every segment, cut a torn tail off the newest one, then replay. The
 * newest segment stays open for appending unless it had to be left as it is.
 */
static int recover(struct spool *sp, uint64_t max_name, const struct spool_params *p,
		   struct spool_stats *st)
{
	uint64_t prev = 0, confirmed = 0;
	size_t i;
	int r;

	for (i = 0; i < sp->nsegs; i += r == 0) {
		r = check_segment(sp, i, &prev, &confirmed, st);
		if (r < 0)
			return -1;
	}
	sp->confirmed = confirmed;
	sp->max_msg = prev;
	/*
	 * Numbering goes on above every seq that may have been handed out: a
	 * segment's name, a set-aside segment's contents, and a confirmation of
	 * messages that never reached the disk (else new messages would count
	 * as confirmed after a restart).
	 */
	sp->last_seq = prev > max_name ? prev : max_name;
	if (confirmed > sp->last_seq)
		sp->last_seq = confirmed;
	if (sp->seq_floor > sp->last_seq)
		sp->last_seq = sp->seq_floor;
	prune_marks(sp);

	prev = 0;
	for (i = 0; i < sp->nsegs; i += r == 0) {
		r = replay_segment(sp, i, &prev, p, st);
		if (r < 0)
			return -1;
	}

	/* an empty newest segment would carry no confirmation: start afresh */
	if (sp->fd >= 0 && sp->segs[sp->nsegs - 1].size == 0)
		sp->broken = true;
	trim(sp);
	return 0;
}

struct spool *spool_open(const char *dir, const struct spool_params *p, struct spool_stats *st)
{
	const struct spool_params defaults = {0};
	struct spool_stats ignored;
	struct spool *sp;
	uint64_t max_name = 0;
	int saved;

	if (!st)
		st = &ignored;
	if (!p)
		p = &defaults;
	*st = (struct spool_stats){0};
	if (!dir || !*dir) {
		errno = EINVAL;
		return NULL;
	}
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return NULL;
	sp->fd = sp->dirfd = -1;
	sp->segment_bytes = p->segment_bytes ? p->segment_bytes : SPOOL_DEFAULT_SEGMENT_BYTES;
	sp->warn = p->warn;
	sp->clock = p->clock;
	sp->ud = p->ud;
	sp->dir = strdup(dir);
	if (!sp->dir)
		goto fail;
	if (make_dirs(dir) < 0)
		goto fail;
	sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0)
		goto fail;
	/* two writers would interleave records */
	if (flock(sp->dirfd, LOCK_EX | LOCK_NB) < 0)
		goto fail;
	if (list_segments(sp, &max_name) < 0)
		goto fail;
	if (recover(sp, max_name, p, st) < 0)
		goto fail;
	st->last_seq = sp->last_seq;
	st->confirmed = sp->confirmed;
	st->segments = sp->nsegs;
	st->set_aside = sp->set_aside;
	return sp;

fail:
	saved = errno;
	spool_free(sp);
	errno = saved;
	return NULL;
}

/* Why a directory cannot be written, and what to do about it. */
static int dir_unusable(char *why, size_t whylen, const char *what, const char *path, int err)
{
	const char *todo = "make it writable by the daemon's user, or choose another directory";

	if (err == EROFS)
		todo = "choose a directory on a writable file system";
	else if (err == ENOTDIR)
		todo = "a part of the path is not a directory: choose another directory";
	else if (err == EPERM)
		todo = "check its attributes (lsattr; chattr -i), or choose another directory";
	snprintf(why, whylen, "%s%s (%s): %s", what, path, strerror(err), todo);
	return -1;
}

int spool_check_dir(const char *dir, char *why, size_t whylen)
{
	struct stat s;
	char *up, *slash;
	int rc = 0;

	if (stat(dir, &s) == 0) {
		if (!S_ISDIR(s.st_mode)) {
			snprintf(why, whylen,
				 "exists and is not a directory: remove it, or choose "
				 "another directory");
			return -1;
		}
		if (faccessat(AT_FDCWD, dir, R_OK | W_OK | X_OK, AT_EACCESS) < 0)
			return dir_unusable(why, whylen, "cannot be written", "", errno);
		return 0;
	}
	if (errno != ENOENT)
		return dir_unusable(why, whylen, "cannot be reached", "", errno);
	/* missing: spool_open creates it, in the nearest directory that exists */
	up = strdup(dir);
	if (!up) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (;;) {
		slash = strrchr(up, '/');
		if (!slash)
			strcpy(up, ".");
		else if (slash == up)
			up[1] = '\0';
		else
			*slash = '\0';
		if (stat(up, &s) == 0)
			break;
		if (errno != ENOENT || !slash || slash == up) {
			rc = dir_unusable(why, whylen, "cannot be created: cannot reach ", up,
					  errno);
			goto out;
		}
	}
	if (!S_ISDIR(s.st_mode)) {
		snprintf(why, whylen,
			 "cannot be created: %s is not a directory: choose another "
			 "directory",
			 up);
		rc = -1;
	} else if (faccessat(AT_FDCWD, up, W_OK | X_OK, AT_EACCESS) < 0) {
		rc = dir_unusable(why, whylen, "cannot be created in ", up, errno);
	}
out:
	free(up);
	return rc;
}
