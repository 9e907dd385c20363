#ifndef WST_STATUS_H
#define WST_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "pmdeflate.h"
#include "spool.h"

/*
 * What the daemon knows about itself at one moment, each owner filling its
 * part (sup_status, links_status, outbox_status, each endpoint's status
 * operation) for control.c, which alone turns it into the status document.
 * Strings point into their owners and are valid until the loop runs again;
 * "" or NULL means none.
 */
#define WST_STATUS_CAUSES 16

struct wst_status {
	const char *instance;		/* instance_name(): every metric's instance label */
	const char *state;		/* connected, connecting, waiting, paused, stopping */
	const char *url;
	time_t connected_since;		/* 0: not connected */
	uint64_t attempts, reconnects, rotations;
	int64_t next_retry_ms;		/* -1: no attempt pending */
	unsigned long long sent, received, resent;
	/* for metrics */
	bool up;
	uint64_t up_ms;			/* how long the link has been up; 0 while down */
	uint64_t failures[WST_STATUS_CAUSES];	/* by the link's failure kind (link_fail_name) */
	unsigned long long sent_bytes, received_bytes, confirmed, confirmed_bytes, resent_bytes;
	int64_t oldest_queued_ms;	/* the oldest queued message's age; -1: none */
	int64_t ping_rtt_us;		/* the last ping's round trip; -1: none yet */
	time_t cert_expiry;		/* the client certificate's notAfter; 0: none */
	size_t queue_messages, queue_bytes, queue_max_messages, queue_max_bytes;
	unsigned long long dropped, dropped_bytes, rejected;
	bool reject_overflow;
	unsigned long long unframable, bridge_clients_dropped;
	/* local endpoints together, by reason (struct endpoint_drops) */
	unsigned long long undelivered, invalid_utf8, oversized, slow_readers, bad_framing;
	unsigned long long too_big;	/* local messages larger than queue.max_bytes */
	/* payload bytes of the dropped messages above, by the same reasons */
	unsigned long long rejected_bytes, unframable_bytes, undelivered_bytes, invalid_utf8_bytes,
		oversized_bytes, too_big_bytes;
	unsigned long long reloads_ok, reloads_failed;
	time_t last_reload_ok;		/* the last config load that succeeded (start-up counts) */
	const char *last_error;
	int last_close_code;		/* 0: none */
	const char *last_close_reason;
	const char *cert_not_after;
	const char *tls_version, *tls_cipher; /* of the link that is up; NULL: none */
	bool insecure;
	int tls_resumed;		/* the link up now resumed a TLS session; -1: no TLS link */
	unsigned long long tls_full, tls_resumed_total;	/* TLS handshakes of links, by kind */
	size_t bridge_clients;
	int exec_pid;
	unsigned long long exec_restarts;
	const char *config_error;
	bool spool_on;			/* queue.spool_dir is set: spool below is valid */
	struct spool_status spool;
	const char *proxy;		/* "" when direct */
	unsigned long long net_probes, net_retries;
	/* link.compression: off, or the parameters the link negotiated (NULL: none) */
	bool compression;
	const char *compression_params;
	struct pmd_report deflate;
};

#endif
