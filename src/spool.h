#ifndef WST_SPOOL_H
#define WST_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The durable mirror of the outbound queue (queue.spool_dir).
 *
 * On disk: segment files "seg-<16 hex digits>.wsq", named by the first seq
 * they were created for and read in name order. A segment is a sequence of
 * records, each a 24-byte header and a payload:
 *
 *	0  magic "WSQ1"		12 seq, u64 little-endian
 *	4  type: 1 message, 2 confirm	20 CRC-32C of bytes 0..19 and the payload
 *	5  flags: bit 0 binary	24 payload (len bytes; none for a confirm)
 *	6  reserved, 0 (u16)
 *	8  len, u32 little-endian
 *
 * Messages: seqs only grow, across segments too. Confirmations: a confirm
 * record says "every message with seq <= this was read by the server (or
 * dropped from the queue)"; it is appended to the newest segment and
 * repeated at the start of every new segment, so the newest one always holds
 * it. A segment whose messages are all confirmed is deleted (the newest one
 * only once it is full). When everything is confirmed and deleted, nothing is
 * left to remember.
 *
 * Durability: a message is on disk when the spool_sync after its append
 * returns. kill -9 loses nothing that was appended (the page cache has it);
 * power loss loses at most what was appended since the last spool_sync. The
 * cost is one fdatasync per loop iteration that appended or confirmed (plus
 * one directory fsync per new segment), not one per message.
 *
 * Recovery (spool_open): a record with a short header, a bad magic, type or
 * flags, a length beyond the end of the file, a bad CRC or a seq that does
 * not grow ends the reading of its segment; every record before it is kept.
 * In the newest segment, when the bad part is the tail (a torn write: a short
 * record, a bad last record, or zeros to the end) it is truncated away and
 * new records go after the good ones; otherwise the segment is left as it is
 * and new records go to a new segment. Each is reported through warn.
 *
 * A spool directory is locked (flock) by the process that opened it.
 * Writes beyond RLIMIT_FSIZE raise SIGXFSZ: the daemon ignores it, so that
 * append fails with EFBIG like ENOSPC or EDQUOT.
 *
 * Pure file I/O: no event loop, no logging, no global state.
 */

#define SPOOL_DEFAULT_SEGMENT_BYTES (1u << 20)
#define SPOOL_RECORD_HEADER 24

struct spool;

/*
 * Called in order for every message not yet confirmed; data is valid only
 * during the call. Return 0 to go on, -1 to make spool_open fail (ECANCELED).
 */
typedef int (*spool_replay_fn)(void *ud, uint64_t seq, const void *data, size_t len,
			       bool binary);
/* A corrupt or torn segment was found; msg names the file and what was done. */
typedef void (*spool_warn_fn)(void *ud, const char *msg);

struct spool_params {
	size_t segment_bytes;	/* start a new segment past this size; 0 = default */
	spool_replay_fn replay;	/* may be NULL */
	spool_warn_fn warn;	/* may be NULL */
	void *ud;
};

struct spool_stats {
	uint64_t last_seq;	/* highest seq used or confirmed: number new messages after it */
	uint64_t confirmed;	/* highest confirmed seq found */
	size_t replayed;	/* messages handed to replay */
	uint64_t replayed_bytes;
	size_t segments;	/* segment files kept */
	size_t corrupt;		/* segments whose reading stopped at a bad record */
	uint64_t truncated;	/* bytes of torn tail cut off */
	uint64_t skipped;	/* bytes left unread after a bad record */
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
 * else. Returns 0, or -1 with errno when the record could not be written or
 * a segment not deleted (the in-memory state is updated anyway; a later
 * confirm retries, and at worst a restart sends a message twice).
 */
int spool_confirm(struct spool *sp, uint64_t seq);

/* Bytes in segment files, headers and confirmed-but-undeleted records included. */
uint64_t spool_bytes(const struct spool *sp);
size_t spool_segments(const struct spool *sp);

/* spool_sync, then release everything. Returns the result of the sync. */
int spool_close(struct spool *sp);

/* CRC-32C (Castagnoli). Start with crc = 0; feed the result back to continue. */
uint32_t spool_crc32c(uint32_t crc, const void *data, size_t len);
/* The table-driven version, used when the CPU lacks a CRC instruction. */
uint32_t spool_crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif
