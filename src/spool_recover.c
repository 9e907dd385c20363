/* Reading a spool at open: find the segments, skip what is damaged, replay the rest. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_int.h"

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

	spool_seg_name(from, name);
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
		if (spool_segs_reserve(sp) < 0)
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
	if (spool_scratch_reserve(sp, ZERO_CHUNK) < 0)
		return -1;
	while (off < end) {
		size_t n = end - off < ZERO_CHUNK ? (size_t)(end - off) : ZERO_CHUNK;

		if (spool_read_at(fd, sp->scratch, n, off) < 0)
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
	if (spool_read_at(fd, h, HDR, off) < 0)
		return RD_ERR;
	*why = spool_record_parse(h, r);
	if (*why)
		return RD_BAD;
	if (r->len > end - off - HDR) {
		*why = "record longer than the file";
		*torn = true;
		return RD_BAD;
	}
	if (spool_scratch_reserve(sp, r->len) < 0 ||
	    spool_read_at(fd, sp->scratch, r->len, off + HDR) < 0)
		return RD_ERR;
	if (!spool_record_crc_ok(h, r, sp->scratch)) {
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

		if (spool_read_at(fd, sp->window, n, pos) < 0)
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
				spool_add_mark(sp, r.seq,
					       (int64_t)spool_get_le(sp->scratch, TIME_LEN));
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
				spool_add_mark(sp, r.seq,
					       sg->mtime_ms); /* written before time records */
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
	spool_seg_forget(sp, i);
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

	spool_seg_name(name, sg->name);
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
		spool_close_active(sp);
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

	spool_seg_name(name, sg->name);
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
		spool_seg_name(name, sg->name);
		fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return give_up(sp, i, "cannot be opened", true);
	}
	if (scan_segment(sp, fd, sg, prev, &unused, &sc, p, st) < 0) {
		saved = errno;
		if (is_active)
			spool_close_active(sp);
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
static int recover_segments(struct spool *sp, uint64_t max_name, const struct spool_params *p,
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
	spool_prune_marks(sp);

	prev = 0;
	for (i = 0; i < sp->nsegs; i += r == 0) {
		r = replay_segment(sp, i, &prev, p, st);
		if (r < 0)
			return -1;
	}

	/* an empty newest segment would carry no confirmation: start afresh */
	if (sp->fd >= 0 && sp->segs[sp->nsegs - 1].size == 0)
		sp->broken = true;
	spool_trim(sp);
	return 0;
}

int spool_recover(struct spool *sp, const struct spool_params *p, struct spool_stats *st)
{
	uint64_t max_name = 0;

	if (list_segments(sp, &max_name) < 0)
		return -1;
	return recover_segments(sp, max_name, p, st);
}
