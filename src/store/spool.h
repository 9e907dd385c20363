#ifndef WST_SPOOL_H
#define WST_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The durable mirror of the outbound queue (queue.spool_dir).
 *
 * On disk (spool_format.h): segment files of records (message, confirm,
 * time), each with a CRC-32C. A segment whose messages are all confirmed is
 * deleted (the newest one only once it is full). When everything is
 * confirmed and deleted, nothing is left to remember.
 *
 * Durability: a message is on disk when the spool_sync after its append
 * returns. kill -9 loses nothing that was appended (the page cache has it);
 * power loss loses at most what was appended since the last spool_sync. The
 * cost is one fdatasync per loop iteration that appended or confirmed (plus
 * one directory fsync per new segment), not one per message.
 *
 * Recovery (spool_open): a damaged record costs only itself. A record with
 * a bad magic, type, flags, length or CRC, or a message whose seq does not
 * grow, is skipped, and reading resumes at the next offset where a record
 * with a good header and CRC starts; good records found inside the span that
 * a damaged record's length claims count only if they chain up to its end (a
 * damaged length), else they were payload (a message holding spool records)
 * and reading resumes after it. What was
 * skipped is counted (records, bytes) and reported once per segment through
 * warn. In the newest segment, damage that runs to the end and looks like a
 * torn write (a short record, a bad last record, or zeros) is truncated away
 * and new records go after the good ones; other damage is left as it is for
 * inspection, and new records go to a new segment.
 *
 * A segment that cannot be opened or read (EACCES, EIO, not a regular file)
 * is set aside: renamed to NAME.bad (NAME.bad.1 ... if taken) when possible,
 * else skipped; one warn line names it either way. Numbering goes on above
 * the seqs it may hold (its name plus its size, as every record takes more
 * than one byte), also at later opens while NAME.bad is there, so that it can
 * be put back. A newest segment that can be read but not written (immutable,
 * read-only) is replayed, and new records go to a new segment. A segment
 * whose messages are all confirmed but which cannot be deleted is forgotten
 * with a warning. So only the directory itself (created, locked, listed) or
 * memory can make spool_open fail.
 *
 * A spool directory is locked (flock) by the process that opened it.
 * Writes beyond RLIMIT_FSIZE raise SIGXFSZ: the daemon ignores it, so that
 * append fails with EFBIG like ENOSPC or EDQUOT.
 *
 * Pure file I/O: no event loop, no logging.
 */

#define SPOOL_DEFAULT_SEGMENT_BYTES (1u << 20)

struct spool;

/*
 * Called in order for every message not yet confirmed; data is valid only
 * during the call. Return 0 to go on, -1 to make spool_open fail (ECANCELED).
 */
typedef int (*spool_replay_fn)(void *ud, uint64_t seq, const void *data, size_t len, bool binary);
/* A corrupt or torn segment was found; msg names the file and what was done. */
typedef void (*spool_warn_fn)(void *ud, const char *msg);
/* Wall-clock time in ms since the epoch; it dates messages across restarts. */
typedef int64_t (*spool_clock_fn)(void *ud);

struct spool_params {
	size_t segment_bytes;	/* start a new segment past this size; 0 = default */
	spool_replay_fn replay; /* may be NULL */
	spool_warn_fn warn;	/* may be NULL */
	spool_clock_fn clock;	/* NULL: CLOCK_REALTIME */
	void *ud;
};

struct spool_stats {
	uint64_t last_seq;  /* highest seq used or confirmed: number new messages after it */
	uint64_t confirmed; /* highest confirmed seq found */
	size_t replayed;    /* messages handed to replay */
	uint64_t replayed_bytes;
	size_t segments;	  /* segment files kept */
	size_t corrupt;		  /* segments with a damaged record */
	uint64_t truncated;	  /* bytes of torn tail cut off */
	uint64_t skipped;	  /* bytes skipped as damaged, torn tails not included */
	uint64_t skipped_records; /* damaged records skipped (at least one per damaged stretch) */
	size_t set_aside;	  /* segments that could not be opened or read */
};

/*
 * Create dir (mode 0700) if missing, lock it, recover and replay it. Returns
 * the spool, or NULL with errno set (EWOULDBLOCK: another process has it).
 * st may be NULL.
 */
struct spool *spool_open(const char *dir, const struct spool_params *p, struct spool_stats *st);

/*
 * Append one message. seq must be above every seq appended or found before.
 * Returns 0, or -1 with errno (ENOSPC, EDQUOT, EFBIG, EIO, EINVAL for a seq
 * that does not grow, EMSGSIZE above 4 GiB - 1). A failed append leaves no
 * record that reads back as valid, and the spool stays usable.
 */
int spool_append(struct spool *sp, uint64_t seq, const void *data, size_t len, bool binary);

/*
 * Make what was appended or confirmed durable: fdatasync the newest segment,
 * and fsync the directory when a segment was created. Does nothing when
 * nothing changed, so call it once per loop iteration. -1 with errno on
 * failure; the next append then starts a new segment.
 */
int spool_sync(struct spool *sp);
bool spool_dirty(const struct spool *sp);

/*
 * Every message with seq <= seq is gone from the queue (confirmed by the
 * server, or dropped): record it and delete the segments that hold nothing
 * else. Returns 0, or -1 with errno when the record could not be written
 * (the in-memory state is updated anyway; a later confirm retries, and at
 * worst a restart sends a message twice). A segment that cannot be deleted
 * is forgotten with one warning.
 */
int spool_confirm(struct spool *sp, uint64_t seq);

/* What status shows; spool_status fills it in (all zero for a NULL spool). */
struct spool_status {
	uint64_t bytes;		  /* in segment files, headers and confirmed records included */
	size_t segments;	  /* segment files */
	int64_t oldest_age_ms;	  /* age of the oldest unconfirmed message; -1: none */
	bool holding;		  /* the last append failed: local senders are held back */
	bool disk_full;		  /* ... with ENOSPC, EDQUOT or EFBIG */
	uint64_t skipped_records; /* damaged records skipped since the open */
	uint64_t skipped_bytes;	  /* and their bytes, torn tails included */
	size_t set_aside;	  /* segments set aside since the open */
	char last_error[256];	  /* the latest failure or damage, as text; "" none */
};
void spool_status(const struct spool *sp, struct spool_status *out);

/*
 * Can dir serve as a spool directory: is it (or can it be created as) a
 * directory this process may write? Nothing is created. Returns 0, or -1 with
 * "why: what to do" in why, for FILE:LINE: queue.spool_dir '...': why.
 */
int spool_check_dir(const char *dir, char *why, size_t whylen);

/* spool_sync, then release everything. Returns the result of the sync. */
int spool_close(struct spool *sp);

#endif
