#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spool_recover.h"

#define MARK_INTERVAL_MS 1000

struct spool {
	struct spool_image im; /* broken: fd's segment may hold a bad record or lost data */
	char *dir;
	int dirfd;	/* holds the lock */
	bool dir_dirty; /* a segment was created since the last directory fsync */
	size_t segment_bytes;
	int64_t last_mark_ms;
	bool failing; /* the last append failed, with fail_errno */
	int fail_errno;
	spool_clock_fn clock;
};

static int64_t now_ms(const struct spool *sp)
{
	struct timespec ts;

	if (sp->clock)
		return sp->clock(sp->im.ud);
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct segment *active(struct spool *sp)
{
	return sp->im.fd >= 0 ? &sp->im.segs[sp->im.nsegs - 1] : NULL;
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
	size_t total = HDR + len, done = 0;
	int saved;

	spool_record_header(h, type, binary, seq, data, (uint32_t)len);
	while (done < total) {
		struct iovec v[2];
		int n = 0;
		ssize_t w;

		if (done < HDR) {
			v[n++] = (struct iovec){.iov_base = h + done, .iov_len = HDR - done};
			if (len)
				v[n++] = (struct iovec){.iov_base = (void *)data, .iov_len = len};
		} else {
			v[n++] = (struct iovec){.iov_base = (unsigned char *)data + (done - HDR),
						.iov_len = total - done};
		}
		w = writev(sp->im.fd, v, n);
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
	sp->im.bytes += total;
	sp->im.dirty = true;
	return 0;

fail:
	saved = errno;
	if (done > 0 && ftruncate(sp->im.fd, (off_t)sg->size) < 0)
		(void)0; /* the CRC makes the half record unreadable anyway */
	/*
	 * Retire the segment: a full disk (ENOSPC, EDQUOT, EFBIG) frees up only
	 * when whole segments are deleted, and trim() keeps a healthy active one.
	 */
	sp->im.broken = true;
	errno = saved;
	return -1;
}

/*
 * Delete a segment file whose messages are all confirmed; i is its index.
 * One that cannot be deleted (immutable, read-only) is forgotten all the
 * same: retrying at every confirmation would only repeat the warning.
 */
static void seg_delete(struct spool *sp, size_t i)
{
	char name[SEG_NAME_SIZE];

	spool_seg_name(name, sp->im.segs[i].name);
	if (unlinkat(sp->dirfd, name, 0) < 0 && errno != ENOENT)
		spool_warnf(&sp->im,
			    "%s/%s: cannot delete it (%s); every message in it was sent: "
			    "left behind",
			    sp->dir, name, strerror(errno));
	sp->im.bytes -= sp->im.segs[i].size;
	spool_segs_remove(sp->im.segs, &sp->im.nsegs, i);
}

/*
 * Delete the segments whose messages are all confirmed. The active one goes
 * only when full (it would be retired anyway); keeping it otherwise avoids a
 * create and a directory fsync every time the queue drains.
 */
static void trim(struct spool *sp)
{
	size_t i = 0;

	while (i < sp->im.nsegs) {
		struct segment *sg = &sp->im.segs[i];
		bool is_active = sp->im.fd >= 0 && i == sp->im.nsegs - 1;

		if (sg->max_seq > sp->im.confirmed ||
		    (is_active && sg->size < sp->segment_bytes && !sp->im.broken)) {
			i++;
			continue;
		}
		if (is_active)
			spool_close_active(&sp->im);
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

	if (sg && !sp->im.broken && sg->size < sp->segment_bytes)
		return 0;
	if (sg) {
		/* its records must be durable before we stop syncing it */
		if (sp->im.dirty && fdatasync(sp->im.fd) < 0) {
			sp->im.broken = true;
			return -1;
		}
		spool_close_active(&sp->im);
		trim(sp);
	}
	if (sp->im.nsegs && sp->im.segs[sp->im.nsegs - 1].name >= n)
		n = sp->im.segs[sp->im.nsegs - 1].name + 1;
	if (n == 0) {
		errno = EOVERFLOW; /* seq space used up: names would no longer sort */
		return -1;
	}
	if (spool_segs_reserve(&sp->im.segs, sp->im.nsegs, &sp->im.segs_cap) < 0)
		return -1;
	spool_seg_name(name, n);
	fd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	sp->im.segs[sp->im.nsegs++] = (struct segment){.name = n};
	sp->last_mark_ms = 0;
	sp->im.fd = fd;
	sp->im.dirty = false;
	sp->im.broken = false;
	sp->dir_dirty = true;
	return sp->im.confirmed ? write_record(sp, REC_CONFIRM, false, sp->im.confirmed, NULL, 0)
				: 0;
}

/* Date the message about to be appended, when the last date is stale or in another segment. */
static int mark_time(struct spool *sp, uint64_t seq)
{
	struct segment *sg = active(sp);
	int64_t now = now_ms(sp);
	unsigned char b[TIME_LEN];

	if (sg->marked && now >= sp->last_mark_ms && now - sp->last_mark_ms < MARK_INTERVAL_MS)
		return 0;
	spool_put_le(b, (uint64_t)now, TIME_LEN);
	if (write_record(sp, REC_TIME, false, seq, b, TIME_LEN) < 0)
		return -1;
	sg->marked = true;
	sp->last_mark_ms = now;
	spool_marks_add(&sp->im.marks, seq, now);
	return 0;
}

int spool_append(struct spool *sp, uint64_t seq, const void *data, size_t len, bool binary)
{
	int saved;

	if (!sp || (!data && len) || seq == 0 || seq <= sp->im.last_seq) {
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
			snprintf(sp->im.last_error, sizeof(sp->im.last_error),
				 "%s: cannot write a message: %s", sp->dir, strerror(saved));
		sp->failing = true;
		sp->fail_errno = saved;
		errno = saved;
		return -1;
	}
	sp->failing = false;
	sp->im.last_seq = sp->im.max_msg = seq;
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
	if (sp->im.dirty && sp->im.fd >= 0 && fdatasync(sp->im.fd) < 0) {
		/* the kernel may have dropped the pages: start afresh next time */
		saved = errno;
		rc = -1;
		sp->im.broken = true;
	}
	sp->im.dirty = false;
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
	return sp && ((sp->im.dirty && sp->im.fd >= 0) || sp->dir_dirty);
}

int spool_confirm(struct spool *sp, uint64_t seq)
{
	if (!sp) {
		errno = EINVAL;
		return -1;
	}
	if (seq <= sp->im.confirmed)
		return 0;
	sp->im.confirmed = seq;
	if (seq > sp->im.last_seq)
		sp->im.last_seq = seq; /* a message at or below it would be lost at the next open */
	spool_marks_prune(&sp->im.marks, sp->im.confirmed);
	trim(sp);
	if (sp->im.nsegs == 0)
		return 0; /* nothing left on disk that this confirmation could filter */
	if (sp->im.fd >= 0 && !sp->im.broken)
		return write_record(sp, REC_CONFIRM, false, seq, NULL, 0);
	return ensure_segment(sp, sp->im.last_seq + 1);
}

void spool_status(const struct spool *sp, struct spool_status *out)
{
	*out = (struct spool_status){.oldest_age_ms = -1};
	if (!sp)
		return;
	out->bytes = sp->im.bytes;
	out->segments = sp->im.nsegs;
	if (sp->im.max_msg > sp->im.confirmed && sp->im.marks.n) {
		int64_t age;

		/* a damaged time record may hold any value: no overflow, and none in the future */
		if (__builtin_sub_overflow(now_ms(sp), sp->im.marks.v[0].ms, &age))
			age = sp->im.marks.v[0].ms < 0 ? INT64_MAX : 0;
		out->oldest_age_ms = age < 0 ? 0 : age; /* the clock went back */
	}
	out->holding = sp->failing;
	out->disk_full = sp->failing && (sp->fail_errno == ENOSPC || sp->fail_errno == EDQUOT ||
					 sp->fail_errno == EFBIG);
	out->skipped_records = sp->im.skipped_records;
	out->skipped_bytes = sp->im.skipped_bytes;
	out->set_aside = sp->im.set_aside;
	memcpy(out->last_error, sp->im.last_error, sizeof(out->last_error));
}

/* Keeps errno: the callers report the failure that came before. */
static void spool_free(struct spool *sp)
{
	int saved = errno;

	if (sp->im.fd >= 0)
		close(sp->im.fd);
	if (sp->dirfd >= 0)
		close(sp->dirfd); /* releases the lock */
	free(sp->im.segs);
	free(sp->im.marks.v);
	free(sp->dir);
	free(sp);
	errno = saved;
}

int spool_close(struct spool *sp)
{
	int rc;

	if (!sp)
		return 0;
	rc = spool_sync(sp);
	spool_free(sp);
	return rc;
}

/* mkdir -p, new components mode 0700. */
static int make_dirs(const char *dir)
{
	char *p = strdup(dir);
	struct stat st;

	if (!p)
		return -1;
	for (char *s = p + 1;; s++) {
		bool end = *s == '\0';

		if (!end && *s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST &&
		    (stat(p, &st) < 0 || !S_ISDIR(st.st_mode))) {
			free(p); /* keeps errno (glibc 2.33, POSIX 2024) */
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
	struct spool_image im;
	struct spool *sp;

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
	sp->im.fd = sp->dirfd = -1;
	sp->segment_bytes = p->segment_bytes ? p->segment_bytes : SPOOL_DEFAULT_SEGMENT_BYTES;
	sp->clock = p->clock;
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
	if (spool_recover(sp->dirfd, dir, p, &im, st) < 0)
		goto fail;
	sp->im = im;
	trim(sp);
	st->last_seq = sp->im.last_seq;
	st->confirmed = sp->im.confirmed;
	st->segments = sp->im.nsegs;
	st->set_aside = sp->im.set_aside;
	return sp;

fail:
	spool_free(sp);
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
