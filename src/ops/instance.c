#include "instance.h"

#include <stdio.h>
#include <string.h>

void instance_name(const char *config_path, char *buf, size_t len)
{
	const char *base = config_path ? strrchr(config_path, '/') : NULL;
	size_t n;

	base = base ? base + 1 : config_path;
	if (!base || !*base) {
		snprintf(buf, len, "wstether");
		return;
	}
	n = strlen(base);
	if (n > 5 && !strcmp(base + n - 5, ".conf"))
		n -= 5;
	snprintf(buf, len, "%.*s", (int)n, base);
}
