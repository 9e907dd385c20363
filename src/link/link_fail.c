/* The link's failure kinds: their names, and the first cause of an attempt's end. */
#include "link.h"

#include <stdarg.h>
#include <stdio.h>

const char *link_fail_name(int fail)
{
	static const char *const names[] = {
	    [LINK_FAIL_CONNECT] = "connect",
	    [LINK_FAIL_TIMEOUT] = "timeout",
	    [LINK_FAIL_TLS] = "tls",
	    [LINK_FAIL_HTTP] = "http",
	    [LINK_FAIL_PROTOCOL] = "protocol",
	    [LINK_FAIL_CLOSED] = "closed",
	    [LINK_FAIL_DEAD] = "dead",
	    [LINK_FAIL_LOCAL] = "local",
	    [LINK_FAIL_VIOLATION] = "violation",
	    [LINK_FAIL_PROXY] = "proxy",
	};

	return fail > 0 && (unsigned)fail < sizeof(names) / sizeof(names[0]) ? names[fail] : NULL;
}

void link_end_set(struct link_end *end, enum link_fail fail, const char *fmt, ...)
{
	va_list ap;

	if (end->fail != LINK_FAIL_NONE)
		return; /* the first cause explains it; later ones are consequences */
	end->fail = fail;
	va_start(ap, fmt);
	vsnprintf(end->msg, sizeof(end->msg), fmt, ap);
	va_end(ap);
}
