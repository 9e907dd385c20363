/* Names of the link's failure kinds, for metrics labels and link events. */
#include "link.h"

const char *link_fail_name(int fail)
{
	static const char *const names[] = {
	    [LINK_FAIL_CONNECT] = "connect",   [LINK_FAIL_TIMEOUT] = "timeout",
	    [LINK_FAIL_TLS] = "tls",	       [LINK_FAIL_HTTP] = "http",
	    [LINK_FAIL_PROTOCOL] = "protocol", [LINK_FAIL_CLOSED] = "closed",
	    [LINK_FAIL_DEAD] = "dead",	       [LINK_FAIL_LOCAL] = "local",
	    [LINK_FAIL_VIOLATION] = "violation", [LINK_FAIL_PROXY] = "proxy",
	};

	return fail > 0 && (unsigned)fail < sizeof(names) / sizeof(names[0]) ? names[fail] : NULL;
}
