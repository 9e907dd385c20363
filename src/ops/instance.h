#ifndef WST_INSTANCE_H
#define WST_INSTANCE_H

#include <stddef.h>

/*
 * The instance name that metrics label and wstetherctl -i finds: the config
 * file's base name without ".conf", which under the template unit
 * wstether@NAME (config /etc/wstether/NAME.conf) is NAME; "wstether" when no
 * file is read (--url alone). Written into buf, cut to len - 1 bytes.
 */
void instance_name(const char *config_path, char *buf, size_t len);

#endif
