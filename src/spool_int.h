#ifndef WST_SPOOL_INT_H
#define WST_SPOOL_INT_H

/* Shared by spool.c (format, writing) and spool_recover.c (reading at open); nobody else. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool.h"

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

struct record {
	int type;
	bool binary;
	uint32_t len;
	uint64_t seq;
	uint32_t crc;
};

uint64_t spool_get_le(const unsigned char *p, int n);
/* NULL when the header is well-formed, else what is wrong with it. */
const char *spool_record_parse(const unsigned char h[HDR], struct record *r);
bool spool_record_crc_ok(const unsigned char h[HDR], const struct record *r,
			 const unsigned char *payload);
void spool_seg_name(char buf[SEG_NAME_SIZE], uint64_t name);
__attribute__((format(printf, 2, 3))) void spool_warnf(struct spool *sp, const char *fmt, ...);
void spool_add_mark(struct spool *sp, uint64_t seq, int64_t ms);
void spool_prune_marks(struct spool *sp);
int spool_read_at(int fd, void *buf, size_t n, uint64_t off);
int spool_scratch_reserve(struct spool *sp, size_t n);
int spool_segs_reserve(struct spool *sp);
void spool_seg_forget(struct spool *sp, size_t i);
void spool_close_active(struct spool *sp);
void spool_trim(struct spool *sp);

/* List, check and replay the segments of a freshly locked spool (spool_recover.c). */
int spool_recover(struct spool *sp, const struct spool_params *p, struct spool_stats *st);

#endif
