#include "spool.h"

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

#include "log.h"
#include "spool_int.h"

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

uint64_t spool_get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

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
const char *spool_record_parse(const unsigned char h[HDR], struct record *r)
{
	if (memcmp(h, rec_magic, 4) != 0)
		return "bad magic";
	r->type = h[4];
	r->binary = h[5] & REC_FLAG_BINARY;
	r->len = (uint32_t)spool_get_le(h + 8, 4);
	r->seq = spool_get_le(h + 12, 8);
	r->crc = (uint32_t)spool_get_le(h + CRC_OFFSET, 4);
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

bool spool_record_crc_ok(const unsigned char h[HDR], const struct record *r,
			 const unsigned char *payload)
{
	return spool_crc32c(spool_crc32c(0, h, CRC_OFFSET), payload, r->len) == r->crc;
}

void spool_seg_name(char buf[SEG_NAME_SIZE], uint64_t name)
{
	snprintf(buf, SEG_NAME_SIZE, "seg-%016" PRIx64 ".wsq", name);
}

static void copy_text(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Every warning is also the last error that status shows. */
__attribute__((format(printf, 2, 3))) void spool_warnf(struct spool *sp, const char *fmt, ...)
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
void spool_add_mark(struct spool *sp, uint64_t seq, int64_t ms)
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
void spool_prune_marks(struct spool *sp)
{
	size_t i = 0;

	while (i + 1 < sp->nmarks && sp->marks[i + 1].seq <= sp->confirmed + 1)
		i++;
	if (i) {
		memmove(sp->marks, sp->marks + i, (sp->nmarks - i) * sizeof(sp->marks[0]));
		sp->nmarks -= i;
	}
}

int spool_read_at(int fd, void *buf, size_t n, uint64_t off)
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

int spool_scratch_reserve(struct spool *sp, size_t n)
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

int spool_segs_reserve(struct spool *sp)
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

void spool_close_active(struct spool *sp)
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
 * and spool_trim() deletes this one once its messages are confirmed.
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
	 * when whole segments are deleted, and spool_trim() keeps a healthy active one.
	 */
	sp->broken = true;
	errno = saved;
	return -1;
}

void spool_seg_forget(struct spool *sp, size_t i)
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

	spool_seg_name(name, sp->segs[i].name);
	if (unlinkat(sp->dirfd, name, 0) < 0 && errno != ENOENT)
		spool_warnf(sp,
			    "%s/%s: cannot delete it (%s); every message in it was sent: "
			    "left behind",
			    sp->dir, name, strerror(errno));
	spool_seg_forget(sp, i);
}

/*
 * Delete the segments whose messages are all confirmed. The active one goes
 * only when full (it would be retired anyway); keeping it otherwise avoids a
 * create and a directory fsync every time the queue drains.
 */
void spool_trim(struct spool *sp)
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
			spool_close_active(sp);
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
		spool_close_active(sp);
		spool_trim(sp);
	}
	if (sp->nsegs && sp->segs[sp->nsegs - 1].name >= n)
		n = sp->segs[sp->nsegs - 1].name + 1;
	if (n == 0) {
		errno = EOVERFLOW; /* seq space used up: names would no longer sort */
		return -1;
	}
	if (spool_segs_reserve(sp) < 0)
		return -1;
	spool_seg_name(name, n);
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
	spool_add_mark(sp, seq, now);
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
	spool_prune_marks(sp);
	spool_trim(sp);
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

struct spool *spool_open(const char *dir, const struct spool_params *p, struct spool_stats *st)
{
	const struct spool_params defaults = {0};
	struct spool_stats ignored;
	struct spool *sp;
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
	if (spool_recover(sp, p, st) < 0)
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
	else if (err == ENOENT)
		todo = "nothing can be created there (a virtual file system such as /proc?): "
		       "choose another directory";
	else if (err == EPERM)
		todo = "check its attributes (lsattr; chattr -i), or choose another directory";
	return errf(why, whylen, "%s%s (%s): %s", what, path, strerror(err), todo);
}

/*
 * Permissions do not tell everything (/proc, a read-only or full file
 * system): create the first missing directory below up, as spool_open
 * would, and remove it again.
 */
static int probe_mkdir(const char *dir, const char *up, char *why, size_t whylen)
{
	size_t skip = !strcmp(up, ".") ? 0 : strlen(up) + (strcmp(up, "/") != 0);
	size_t n = skip + strcspn(dir + skip, "/");
	char *first = strndup(dir, n);
	int rc = 0;

	if (!first)
		return errf(why, whylen, "out of memory");
	if (mkdir(first, 0700) < 0)
		rc = dir_unusable(why, whylen, "cannot be created: mkdir ", first, errno);
	else if (rmdir(first) < 0)
		rc = dir_unusable(why, whylen, "cannot be checked: rmdir ", first, errno);
	free(first);
	return rc;
}

int spool_check_dir(const char *dir, char *why, size_t whylen)
{
	struct stat s;
	char *up, *slash;
	int rc = 0;

	if (stat(dir, &s) == 0) {
		if (!S_ISDIR(s.st_mode))
			return errf(why, whylen,
				    "exists and is not a directory: remove it, or choose "
				    "another directory");
		if (faccessat(AT_FDCWD, dir, R_OK | W_OK | X_OK, AT_EACCESS) < 0)
			return dir_unusable(why, whylen, "cannot be written", "", errno);
		return 0;
	}
	if (errno != ENOENT)
		return dir_unusable(why, whylen, "cannot be reached", "", errno);
	/* missing: spool_open creates it, in the nearest directory that exists */
	up = strdup(dir);
	if (!up)
		return errf(why, whylen, "out of memory");
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
	} else {
		rc = probe_mkdir(dir, up, why, whylen);
	}
out:
	free(up);
	return rc;
}
