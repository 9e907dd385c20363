/* Reading a spool at open: find the segments, skip what is damaged, replay the rest. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "spool_recover.h"

#define ZERO_CHUNK (64 * 1024) /* resync reads this much at a time */
#define BAD_SUFFIXES 10	       /* NAME.bad, NAME.bad.1 ... NAME.bad.9 */

struct recovery {
	struct spool_image im;
	int dirfd;
	const char *dir;
	unsigned char *scratch, *window;
	size_t scratch_cap;
	uint64_t seq_floor; /* numbering stays above the seqs of set-aside segments */
};

void spool_warnf(struct spool_image *im, const char *fmt, ...)
{
	char msg[512];
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = strnlen(msg, sizeof(im->last_error) - 1);
	memcpy(im->last_error, msg, n);
	im->last_error[n] = '\0';
	if (im->warn)
		im->warn(im->ud, msg);
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

void spool_close_active(struct spool_image *im)
{
	if (im->fd >= 0)
		close(im->fd);
	im->fd = -1;
	im->dirty = false;
	im->broken = false;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct segment *x = a, *y = b;

	return x->name < y->name ? -1 : x->name > y->name;
}

static void raise_floor(struct recovery *rc, uint64_t name, uint64_t size)
{
	uint64_t top = name > UINT64_MAX - size ? UINT64_MAX : name + size;

	if (top > rc->seq_floor)
		rc->seq_floor = top;
}

/*
 * A segment that cannot be used: rename it to NAME.bad (NAME.bad.N when
 * taken) so that the next start does not trip over it again, or leave it.
 * Its seqs are unknown; every record takes more than one byte, so none is
 * above its name plus its size: numbering goes on above that.
 */
static void set_aside(struct recovery *rc, uint64_t name, uint64_t size, const char *what, int err)
{
	char from[SEG_NAME_SIZE], to[SEG_NAME_SIZE + 8], cause[160] = "";
	int rerr = EEXIST;

	spool_seg_name(from, name);
	if (err)
		snprintf(cause, sizeof(cause), " (%s)", strerror(err));
	for (int i = 0; i < BAD_SUFFIXES && rerr == EEXIST; i++) {
		if (i)
			snprintf(to, sizeof(to), "%s.bad.%d", from, i);
		else
			snprintf(to, sizeof(to), "%s.bad", from);
		/* we hold the lock: nobody else creates names in the directory */
		if (faccessat(rc->dirfd, to, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		rerr = renameat(rc->dirfd, from, rc->dirfd, to) == 0 ? 0 : errno;
	}
	if (!rerr)
		spool_warnf(&rc->im, "%s/%s %s%s: set aside as %s; its messages are not sent",
			    rc->dir, from, what, cause, to);
	else
		spool_warnf(&rc->im,
			    "%s/%s %s%s, and cannot be renamed (%s): skipped; its messages are "
			    "not sent",
			    rc->dir, from, what, cause, strerror(rerr));
	raise_floor(rc, name, size);
	rc->im.set_aside++;
}

/*
 * Find the segment files; *max_name is the highest name seen. Files that
 * are not regular are set aside at once.
 */
static int list_segments(struct recovery *rc, uint64_t *max_name)
{
	DIR *d;
	struct dirent *e;
	struct stat st;
	int fd, saved;

	fd = openat(rc->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
		if (spool_seg_parse_bad_name(e->d_name, &name)) {
			/* it may be put back once repaired: keep its seqs unused */
			if (fstatat(rc->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
				raise_floor(rc, name,
					    S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0);
			continue;
		}
		if (!spool_seg_parse_name(e->d_name, &name))
			continue;
		if (name > *max_name)
			*max_name = name;
		if (fstatat(rc->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			set_aside(rc, name, 0, "cannot be examined", errno);
			continue;
		}
		if (!S_ISREG(st.st_mode)) {
			set_aside(rc, name, 0, "is not a regular file", 0);
			continue;
		}
		if (spool_segs_reserve(&rc->im.segs, rc->im.nsegs, &rc->im.segs_cap) < 0)
			goto fail;
		rc->im.segs[rc->im.nsegs++] = (struct segment){
		    .name = name,
		    .size = (uint64_t)st.st_size,
		    .mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000,
		};
	}
	if (errno)
		goto fail;
	closedir(d);
	if (rc->im.nsegs > 1)
		qsort(rc->im.segs, rc->im.nsegs, sizeof(rc->im.segs[0]), seg_cmp);
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

static int all_zero(struct recovery *rc, int fd, uint64_t off, uint64_t end, bool *zero)
{
	*zero = false;
	if (mem_reserve(&rc->scratch, &rc->scratch_cap, ZERO_CHUNK) < 0)
		return -1;
	while (off < end) {
		size_t n = end - off < ZERO_CHUNK ? (size_t)(end - off) : ZERO_CHUNK;

		if (read_at(fd, rc->scratch, n, off) < 0)
			return -1;
		for (size_t i = 0; i < n; i++)
			if (rc->scratch[i])
				return 0;
		off += n;
	}
	*zero = true;
	return 0;
}

enum rd { RD_OK, RD_BAD, RD_ERR };

/* A record as read_record found it; why, torn and len_ok tell of an RD_BAD one. */
struct read {
	struct record r;
	const char *why;
	bool torn;   /* as a cut-short write leaves it */
	bool len_ok; /* only the CRC is wrong, so its length may still be right */
};

/* Read the record at off: RD_OK with its payload in rc->scratch, RD_BAD, or RD_ERR with errno. */
static enum rd read_record(struct recovery *rc, int fd, uint64_t off, uint64_t end, struct read *x)
{
	unsigned char h[HDR];

	*x = (struct read){.why = "short record header", .torn = true};
	if (end - off < HDR)
		return RD_BAD;
	if (read_at(fd, h, HDR, off) < 0)
		return RD_ERR;
	x->torn = false;
	if ((x->why = spool_record_parse(h, &x->r)))
		return RD_BAD;
	if (x->r.len > end - off - HDR) {
		x->why = "record longer than the file";
		x->torn = true;
		return RD_BAD;
	}
	if (mem_reserve(&rc->scratch, &rc->scratch_cap, x->r.len) < 0 ||
	    read_at(fd, rc->scratch, x->r.len, off + HDR) < 0)
		return RD_ERR;
	if (!spool_record_crc_ok(h, &x->r, rc->scratch)) {
		x->why = "bad CRC";
		x->torn = off + HDR + x->r.len == end;
		x->len_ok = true;
		return RD_BAD;
	}
	return RD_OK;
}

/* The next good record after off, or end; *records counts the bad record starts passed over. */
static int scan_for_record(struct recovery *rc, int fd, uint64_t off, uint64_t end, uint64_t *next,
			   uint64_t *records)
{
	struct read x;
	enum rd k;

	if (!rc->window && !(rc->window = malloc(ZERO_CHUNK)))
		return -1;
	for (uint64_t pos = off + 1; pos < end;) {
		size_t n = end - pos < ZERO_CHUNK ? (size_t)(end - pos) : ZERO_CHUNK;
		const unsigned char *w = rc->window, *hit;

		if (read_at(fd, rc->window, n, pos) < 0)
			return -1;
		while ((hit = memmem(w, n - (size_t)(w - rc->window), spool_magic, 4))) {
			*next = pos + (uint64_t)(hit - rc->window);
			k = read_record(rc, fd, *next, end, &x);
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
static int chain_reaches(struct recovery *rc, int fd, uint64_t q, uint64_t to, uint64_t end,
			 bool *yes)
{
	struct read x;
	enum rd k = RD_OK;

	while (q < to && (k = read_record(rc, fd, q, end, &x)) == RD_OK)
		q += HDR + x.r.len;
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
static int resync(struct recovery *rc, int fd, uint64_t off, uint64_t end, const struct record *bad,
		  uint64_t *next, uint64_t *records)
{
	uint64_t after = bad ? off + HDR + bad->len : end;
	struct read x;
	bool chained;
	enum rd k = RD_BAD;

	*records = 1;
	if (bad)
		k = after == end ? RD_OK : read_record(rc, fd, after, end, &x);
	if (k == RD_ERR || scan_for_record(rc, fd, off, end, next, records) < 0)
		return -1;
	if (k != RD_OK || *next >= after)
		return 0;
	if (chain_reaches(rc, fd, *next, after, end, &chained) < 0)
		return -1;
	if (!chained) {
		*next = after;
		*records = 1;
	}
	return 0;
}

/* Skip the damage at *off; the first pass notes it in sc and sg->valid. */
static int skip_damage(struct recovery *rc, int fd, uint64_t *off, uint64_t end,
		       const struct read *x, struct segment *sg, struct scan *sc)
{
	const char *why = x->why;
	bool zero, torn = x->torn;
	uint64_t next, records;

	if (resync(rc, fd, *off, end, x->len_ok ? &x->r : NULL, &next, &records) < 0)
		return -1;
	if (next == end && !torn) {
		if (all_zero(rc, fd, *off, end, &zero) < 0)
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
 * damage in sc. Second pass: hand the messages above rc->im.confirmed and *prev
 * to replay; the same records are skipped, as the file is the same.
 */
static int scan_segment(struct recovery *rc, int fd, struct segment *sg, uint64_t *prev,
			uint64_t *confirmed, struct scan *sc, const struct spool_params *p,
			struct spool_stats *st)
{
	uint64_t off = 0, end = sg->size;
	bool dated = false;
	struct read x;
	const struct record *r = &x.r;

	*sc = (struct scan){0};
	if (!p)
		sg->valid = end;
	while (off < end) {
		enum rd k = read_record(rc, fd, off, end, &x);

		if (k == RD_ERR)
			return -1;
		if (k == RD_BAD) {
			if (skip_damage(rc, fd, &off, end, &x, sg, sc) < 0)
				return -1;
			continue;
		}
		off += HDR + r->len;
		if (r->type == REC_CONFIRM || r->type == REC_TIME) {
			if (p)
				continue;
			if (r->type == REC_CONFIRM && r->seq > *confirmed)
				*confirmed = r->seq;
			if (r->type == REC_TIME) {
				spool_marks_add(&rc->im.marks, r->seq,
						(int64_t)spool_get_le(rc->scratch, TIME_LEN));
				dated = true;
			}
			continue;
		}
		if (r->seq <= *prev) {
			if (!p) {
				if (!sc->why) {
					sc->why = "message seq does not grow";
					sc->first_bad = off - HDR - r->len;
				}
				sc->records++;
				sc->bytes += HDR + r->len;
			}
			continue;
		}
		*prev = r->seq;
		if (!p) {
			if (!dated)
				spool_marks_add(&rc->im.marks, r->seq,
						sg->mtime_ms); /* written before time records */
			dated = true;
			sg->max_seq = r->seq;
		} else if (r->seq > rc->im.confirmed) {
			if (p->replay &&
			    p->replay(p->ud, r->seq, rc->scratch, r->len, r->binary) != 0) {
				errno = ECANCELED;
				return -1;
			}
			st->replayed++;
			st->replayed_bytes += r->len;
		}
	}
	return 0;
}

/*
 * Segment i cannot be used: set it aside and drop it from the list
 * (counted: its bytes are in rc->im.bytes). 1, or -1 for what must fail the
 * open: no memory, or the replay callback.
 */
static int give_up(struct recovery *rc, size_t i, const char *what, bool counted)
{
	int err = errno;

	if (err == ENOMEM || err == ECANCELED)
		return -1;
	set_aside(rc, rc->im.segs[i].name, rc->im.segs[i].size, what, err);
	if (counted)
		rc->im.bytes -= rc->im.segs[i].size;
	spool_segs_remove(rc->im.segs, &rc->im.nsegs, i);
	return 1;
}

/* Report the damage of segment i (fd open on it) and cut a torn tail off the newest one. */
static void report_damage(struct recovery *rc, size_t i, int fd, const struct scan *sc,
			  struct spool_stats *st)
{
	struct segment *sg = &rc->im.segs[i];
	bool cut = fd == rc->im.fd && sc->tail && ftruncate(fd, (off_t)sg->valid) == 0;
	uint64_t recs = sc->records - (cut ? sc->tail_records : 0);
	uint64_t bytes = sc->bytes - (cut ? sc->tail_bytes : 0);
	char name[SEG_NAME_SIZE], tail[96] = "";

	spool_seg_name(name, sg->name);
	st->corrupt++;
	rc->im.skipped_records += sc->records;
	rc->im.skipped_bytes += sc->bytes;
	st->skipped_records += recs;
	st->skipped += bytes;
	if (cut) {
		st->truncated += sc->tail_bytes;
		rc->im.bytes -= sg->size - sg->valid;
		sg->size = sg->valid;
		rc->im.dirty = true; /* make the cut durable at the next sync */
		snprintf(tail, sizeof(tail), "torn tail, %" PRIu64 " bytes cut off",
			 sc->tail_bytes);
	}
	if (!bytes)
		spool_warnf(&rc->im, "%s/%s: %s at offset %" PRIu64 ": %s", rc->dir, name, sc->why,
			    sc->first_bad, tail);
	else
		spool_warnf(&rc->im,
			    "%s/%s: %s at offset %" PRIu64 ": %" PRIu64
			    " damaged record(s), %" PRIu64 " bytes, skipped; the records "
			    "around them are kept%s%s",
			    rc->dir, name, sc->why, sc->first_bad, recs, bytes, cut ? "; " : "",
			    tail);
	/*
	 * Leave the evidence as it is, and new records out of its reach (a
	 * damaged length could claim them): they go to a new segment.
	 */
	if (fd == rc->im.fd && (!cut || bytes))
		spool_close_active(&rc->im);
}

/*
 * First pass over segment i: open it (the newest one for appending when it
 * can be written), check it, and note its damage. 0: kept, 1: set aside and
 * dropped from the list, -1: the open must fail.
 */
static int check_segment(struct recovery *rc, size_t i, uint64_t *prev, uint64_t *confirmed,
			 struct spool_stats *st)
{
	struct segment *sg = &rc->im.segs[i];
	bool last = i == rc->im.nsegs - 1;
	char name[SEG_NAME_SIZE];
	int fd, werr = 0;
	struct scan sc;
	struct stat s;

	spool_seg_name(name, sg->name);
	fd =
	    openat(rc->dirfd, name, (last ? O_RDWR | O_APPEND : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && last && (errno == EACCES || errno == EPERM || errno == EROFS)) {
		werr = errno; /* immutable or read-only: its messages can still be read */
		fd = openat(rc->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0)
		return give_up(rc, i, "cannot be opened", false);
	if (fstat(fd, &s) < 0 || (sg->size = (uint64_t)s.st_size,
				  scan_segment(rc, fd, sg, prev, confirmed, &sc, NULL, st) < 0)) {
		int saved = errno;

		close(fd);
		errno = saved;
		return give_up(rc, i, "cannot be read", false);
	}
	rc->im.bytes += sg->size;
	if (werr)
		spool_warnf(&rc->im,
			    "%s/%s cannot be written (%s): its messages are sent, new ones go "
			    "to a new segment",
			    rc->dir, name, strerror(werr));
	if (last && !werr)
		rc->im.fd = fd;
	if (sc.why)
		report_damage(rc, i, fd, &sc, st);
	if (fd != rc->im.fd)
		close(fd);
	return 0;
}

/* Second pass over segment i: replay. 0, 1: set aside, -1: the open must fail. */
static int replay_segment(struct recovery *rc, size_t i, uint64_t *prev,
			  const struct spool_params *p, struct spool_stats *st)
{
	struct segment *sg = &rc->im.segs[i];
	bool is_active = rc->im.fd >= 0 && i == rc->im.nsegs - 1;
	char name[SEG_NAME_SIZE];
	uint64_t unused = 0;
	struct scan sc;
	int fd = rc->im.fd, saved;

	if (sg->max_seq <= rc->im.confirmed)
		return 0;
	if (!is_active) {
		spool_seg_name(name, sg->name);
		fd = openat(rc->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return give_up(rc, i, "cannot be opened", true);
	}
	if (scan_segment(rc, fd, sg, prev, &unused, &sc, p, st) < 0) {
		saved = errno;
		if (is_active)
			spool_close_active(&rc->im);
		else
			close(fd);
		errno = saved;
		return give_up(rc, i, "cannot be read", true);
	}
	if (!is_active)
		close(fd);
	return 0;
}

/*
 * Check every segment, cut a torn tail off the newest one, then replay. The
 * newest segment stays open for appending unless it had to be left as it is.
 */
static int recover_segments(struct recovery *rc, uint64_t max_name, const struct spool_params *p,
			    struct spool_stats *st)
{
	uint64_t prev = 0, confirmed = 0, newest = 0;
	size_t i;
	int r;

	for (i = 0; i < rc->im.nsegs; i += r == 0) {
		uint64_t own = 0; /* the segment's own highest confirmation */

		r = check_segment(rc, i, &prev, &own, st);
		if (r < 0)
			return -1;
		confirmed = own > confirmed ? own : confirmed;
		newest = r == 0 ? own : newest;
	}
	rc->im.confirmed = confirmed;
	rc->im.max_msg = prev;
	/*
	 * Numbering goes on above every seq that may have been handed out: a
	 * segment's name, a set-aside segment's contents, and a confirmation of
	 * messages that never reached the disk (else new messages would count
	 * as confirmed after a restart).
	 */
	rc->im.last_seq = prev > max_name ? prev : max_name;
	if (confirmed > rc->im.last_seq)
		rc->im.last_seq = confirmed;
	if (rc->seq_floor > rc->im.last_seq)
		rc->im.last_seq = rc->seq_floor;
	spool_marks_prune(&rc->im.marks, rc->im.confirmed);

	prev = 0;
	for (i = 0; i < rc->im.nsegs; i += r == 0) {
		r = replay_segment(rc, i, &prev, p, st);
		if (r < 0)
			return -1;
	}

	/*
	 * The newest segment must carry the confirmation, since the older ones
	 * are deleted: when it does not (it is empty, or damage took its copy),
	 * start afresh, or confirmed messages in it would come back.
	 */
	if (rc->im.fd >= 0 && (rc->im.segs[rc->im.nsegs - 1].size == 0 || newest < confirmed))
		rc->im.broken = true;
	return 0;
}

int spool_recover(int dirfd, const char *dir, const struct spool_params *p, struct spool_image *im,
		  struct spool_stats *st)
{
	struct recovery rc = {
	    .im = {.fd = -1, .warn = p->warn, .ud = p->ud}, .dirfd = dirfd, .dir = dir};
	uint64_t max_name = 0;
	int rv = -1, saved;

	if (list_segments(&rc, &max_name) == 0 && recover_segments(&rc, max_name, p, st) == 0)
		rv = 0;
	saved = errno;
	free(rc.scratch);
	free(rc.window);
	if (rv < 0) {
		if (rc.im.fd >= 0)
			close(rc.im.fd);
		free(rc.im.segs);
		free(rc.im.marks.v);
	} else {
		*im = rc.im;
	}
	errno = saved;
	return rv;
}
