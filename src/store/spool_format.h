#ifndef WST_SPOOL_FORMAT_H
#define WST_SPOOL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The spool on disk, as pure codecs (no I/O): segment files
 * "seg-<16 hex digits>.wsq", named by the first seq they were created for
 * and read in name order. A segment is a sequence of records, each a 24-byte
 * header and a payload:
 *
 *	0  magic "WSQ1"		12 seq, u64 little-endian
 *	4  type: 1 message,	20 CRC-32C of bytes 0..19 and the payload
 *	   2 confirm, 3 time	24 payload (len bytes; none for a confirm)
 *	5  flags: bit 0 binary
 *	6  reserved, 0 (u16)
 *	8  len, u32 little-endian
 *
 * Messages: seqs only grow, across segments too. Confirmations: a confirm
 * record says "every message with seq <= this was read by the server (or
 * dropped from the queue)"; it is appended to the newest segment and
 * repeated at the start of every new segment, so the newest one always holds
 * it.
 *
 * Time: a time record (payload: Unix time in ms, u64 little-endian) comes
 * before the first message of every segment, and before a message appended
 * a second or more after the last one; its seq is that message's. It dates
 * the messages up to the next one, for the oldest message's age. Segments
 * without one (written before time records existed) are dated by their
 * mtime. Versions before time records stop reading a segment at one.
 *
 * A segment that cannot be used is renamed NAME.bad (NAME.bad.1 ... if taken).
 */

#define SPOOL_RECORD_HEADER 24
#define HDR SPOOL_RECORD_HEADER
enum { REC_MESSAGE = 1, REC_CONFIRM = 2, REC_TIME = 3 };
#define REC_FLAG_BINARY 0x01
#define CRC_OFFSET 20
#define TIME_LEN 8
#define SEG_NAME_SIZE 32 /* "seg-" 16 hex ".wsq" NUL, rounded up */

extern const unsigned char spool_magic[4];

struct record {
	int type;
	bool binary;
	uint32_t len;
	uint64_t seq;
	uint32_t crc;
};

/* CRC-32C (Castagnoli). Start with crc = 0; feed the result back to continue. */
uint32_t spool_crc32c(uint32_t crc, const void *data, size_t len);
/* The table-driven version, used when the CPU lacks a CRC instruction. */
uint32_t spool_crc32c_sw(uint32_t crc, const void *data, size_t len);

void spool_put_le(unsigned char *p, uint64_t v, int n);
uint64_t spool_get_le(const unsigned char *p, int n);
/* The header of a record whose payload is data[0..len). */
void spool_record_header(unsigned char h[HDR], int type, bool binary, uint64_t seq,
			 const void *data, uint32_t len);
/* NULL when the header is well-formed, else what is wrong with it. */
const char *spool_record_parse(const unsigned char h[HDR], struct record *r);
bool spool_record_crc_ok(const unsigned char h[HDR], const struct record *r,
			 const unsigned char *payload);

void spool_seg_name(char buf[SEG_NAME_SIZE], uint64_t name);
/* Is s a segment's name (lower-case hex only: one name per seq)? *name is its seq. */
bool spool_seg_parse_name(const char *s, uint64_t *name);
/* "seg-<16 hex>.wsq.bad..." as a set-aside segment is named. */
bool spool_seg_parse_bad_name(const char *s, uint64_t *name);

/* The index of the segments, in name order. */
struct segment {
	uint64_t name;	  /* the seq in its file name */
	uint64_t max_seq; /* highest message seq in it; 0: none */
	uint64_t size;	  /* bytes in the file */
	uint64_t valid;	  /* recovery: where a torn tail starts (size when none) */
	int64_t mtime_ms; /* recovery: dates messages before its first time record */
	bool marked;	  /* active: a time record was written to it since the open */
};
/* Room for one more in *segs; -1: out of memory. */
int spool_segs_reserve(struct segment **segs, size_t n, size_t *cap);
void spool_segs_remove(struct segment *segs, size_t *n, size_t i);

/* Messages from seq on were appended at ms (until the next mark). */
struct mark {
	uint64_t seq;
	int64_t ms;
};
struct marks {
	struct mark *v; /* ascending seqs; v[0] dates the oldest unconfirmed message */
	size_t n, cap;
};
/* Best effort: without memory the oldest message's age is only less precise. */
void spool_marks_add(struct marks *m, uint64_t seq, int64_t ms);
/* Forget the marks before the one that dates the first message above confirmed. */
void spool_marks_prune(struct marks *m, uint64_t confirmed);

#endif
