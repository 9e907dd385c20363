#ifndef WST_SPOOL_RECOVER_H
#define WST_SPOOL_RECOVER_H

#include "spool.h"
#include "spool_format.h"

/* What recovery found in a locked spool directory: spool_open adopts it. */
struct spool_image {
	spool_warn_fn warn; /* and ud: from spool_params */
	void *ud;
	struct segment *segs; /* kept, in name order; when fd >= 0 the last one is fd's */
	size_t nsegs, segs_cap;
	struct marks marks;
	int fd;	     /* the newest segment, open for appending, or -1 */
	bool dirty;  /* fd: a torn tail was cut off, not yet synced */
	bool broken; /* fd: it does not carry the confirmation (empty, damaged): start afresh */
	uint64_t last_seq, confirmed, max_msg, bytes;
	uint64_t skipped_records, skipped_bytes;
	size_t set_aside;
	char last_error[256]; /* the latest failure or damage, for status */
};

/* Tell warn, and keep the text as the last error that status shows. */
__attribute__((format(printf, 2, 3))) void spool_warnf(struct spool_image *im, const char *fmt,
						       ...);

/* Stop appending to the newest segment: the next append starts a new one. */
void spool_close_active(struct spool_image *im);

/*
 * List, check and replay the segments in dirfd (dir names it in warnings).
 * 0 with *im filled in, or -1 with errno and nothing to free.
 */
int spool_recover(int dirfd, const char *dir, const struct spool_params *p, struct spool_image *im,
		  struct spool_stats *st);

#endif
