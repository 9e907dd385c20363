#ifndef WST_LINK_RX_H
#define WST_LINK_RX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "link.h"
#include "pongq.h"
#include "utf8.h"
#include "wsrx.h"

struct pmd;

/*
 * One attempt's receive session: what the server sends, parsed by wsrx and
 * answered as RFC 6455 says. Pure: it never touches the link. A feed says
 * what the link must do (link.c does it); the pongs owed wait in pongs for
 * the link's next write. Whole messages alone go out during the feed,
 * through deliver, as their bytes live only that long.
 */
typedef void link_rx_deliver(void *ud, const unsigned char *data, size_t len, bool binary);

enum {
	LINK_RX_WRITE = 1,	/* pongs are owed: ask for WRITEABLE */
	LINK_RX_CLOSE = 2,	/* a close frame is owed (link_rx_answer): send it, then wait */
	LINK_RX_FINISH = 4,	/* our close frame was out already: drop the TCP */
	LINK_RX_RESTARTING = 8, /* the server goes away or restarts (1001, 1012) */
	LINK_RX_PONG = 16,	/* pongs to our pings came, carrying pong_first .. pong_last */
};

struct link_rx {
	struct wsrx wire;
	struct pmd *pmd; /* the link's, once permessage-deflate was agreed */
	const char *host;
	unsigned port;
	link_rx_deliver *deliver;
	void *ud;
	bool violated;	  /* we fail the link for the server's protocol error */
	bool peer_closed; /* the server's close frame came: we echo its code */
	int peer_code;
	struct pongq pongs;   /* owed to the server's pings, written first in each batch */
	bool pong_flood_said; /* the one line about pings we could not all answer */
	/* the compressed message being inflated: how much of it was checked UTF-8 */
	bool inflating;
	size_t inflated_checked;
	struct utf8_stream inflated_utf8;
	/* during a feed: what it asks of the link (LINK_RX_*) */
	unsigned todo;
	/* LINK_RX_PONG: pongs echo pings in order and the seqs pings carry never go down */
	uint64_t pong_first, pong_last;
	struct link_end *end;
	uint64_t fence;
	bool close_sent;
};

/* Once the upgrade succeeded; host and port name the server in what it says. */
void link_rx_init(struct link_rx *s, size_t max_message, struct pmd *pmd, const char *host,
		  unsigned port, link_rx_deliver *deliver, void *ud);
void link_rx_finish(struct link_rx *s);
/*
 * Bytes from the server. fence: the newest seq our pings carried (a pong
 * with a higher one is not ours); close_sent: our close frame went out.
 * Returns what the link must do. What the server's close said goes into end's
 * close_code and close_reason; why the attempt ends into its fail, msg and
 * clean_close, unless an earlier cause set them.
 */
unsigned link_rx_feed(struct link_rx *s, const unsigned char *in, size_t len, uint64_t fence,
		      bool close_sent, struct link_end *end);
/* The close frame owed to the server: its code (0: no payload) and reason, or -1 for none. */
int link_rx_answer(const struct link_rx *s, const char **reason);

#endif
