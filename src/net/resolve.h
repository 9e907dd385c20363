#ifndef WST_RESOLVE_H
#define WST_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ev_loop;

/*
 * Name resolution on the daemon's libev loop with c-ares: A and AAAA, with
 * /etc/hosts, resolv.conf (read afresh by every lookup) and its search list.
 * Never blocks; the caller's own timer bounds it.
 */
struct resolve;

#define RESOLVE_MAX 16

struct resolve_addrs {
	size_t n;
	struct sockaddr_storage a[RESOLVE_MAX]; /* port filled in */
};

/* ok: addrs set, err NULL. Failed: addrs NULL, err one line that says why. */
typedef void (*resolve_done_fn)(void *ud, const struct resolve_addrs *addrs, const char *err);

struct resolve_opts {
	int family;		  /* AF_UNSPEC, AF_INET or AF_INET6 */
	const char *iface;	  /* "" or the device queries go out of */
	const char *bind_address; /* "" or the source address of queries */
};

/* NULL with err set if the lookup could not even start. done() is never called from here. */
struct resolve *resolve_start(struct ev_loop *loop, const char *host, uint16_t port,
			      const struct resolve_opts *o, resolve_done_fn done, void *ud,
			      char *err, size_t errlen);
/* Stop (no done() after this) and free; NULL is fine. */
void resolve_free(struct resolve *r);
/* One of this host's addresses, with its network and interface. */
struct resolve_local {
	struct sockaddr_storage addr;
	unsigned prefix;  /* the length of its network's prefix */
	unsigned ifindex; /* its interface */
};

/*
 * Whether queries to this resolver go out unbound, without link.interface
 * (index iface_index, 0 if none) and link.bind_address, because that binding
 * cannot reach it: a resolver on loopback or on one of this host's own
 * addresses (own[0..n)) is reached through lo only; one on the network of
 * another interface, and not on iface_index's, only through that interface;
 * an IPv6 link-local one scoped to another interface only through that one.
 */
bool resolve_server_unbound(const struct sockaddr *server, unsigned iface_index,
			    const struct resolve_local *own, size_t n);

/* For a timeout message: "resolver 10.0.0.53 did not answer for 'host'". */
void resolve_describe_wait(const struct resolve *r, char *buf, size_t len);

#endif
