/* wstether: keep one WebSocket link up and bridge it to local programs. */
#include <getopt.h>
#include <stdio.h>

#include "buildinfo.h"
#include "config.h"
#include "daemon.h"
#include "hello.h"
#include "log.h"
#include "tls.h"

#define EX_USAGE 64

static void usage(FILE *f)
{
	fprintf(f, "Usage: wstether [OPTIONS]\n"
		   "Keep one ws:// or wss:// link up and bridge it to local programs.\n\n"
		   "  -c, --config FILE     config file (default " WST_DEFAULT_CONFIG ")\n"
		   "  -u, --url URL         server URL; overrides link.url, and alone means\n"
		   "                        built-in defaults for everything else\n"
		   "      --stdio           bridge stdin/stdout: one line = one text message\n"
		   "  -t, --check           validate the configuration and exit\n"
		   "  -l, --log-level LEVEL error, warning, notice, info (default), debug\n"
		   "  -V, --version         print the version and exit\n"
		   "  -h, --help            print this help and exit\n\n"
		   "Exit status: 0 clean stop, 64 bad command line, 78 bad configuration,\n"
		   "1 other fatal error. See wstether(8) and wstether.conf(5).\n");
}

/* Parse the command line into opts: -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, struct daemon_opts *opts, bool *check, int *level)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"url", required_argument, NULL, 'u'},
	    {"stdio", no_argument, NULL, 's'},
	    {"check", no_argument, NULL, 't'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:u:tl:Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			opts->config_path = optarg;
			break;
		case 'u':
			opts->url_override = optarg;
			break;
		case 's':
			opts->use_stdio = true;
			break;
		case 't':
			*check = true;
			break;
		case 'l':
			*level = log_level_parse(optarg);
			if (*level < 0) {
				fprintf(stderr,
					"wstether: --log-level '%s': use error, warning, notice, "
					"info or debug\n",
					optarg);
				return EX_USAGE;
			}
			opts->log_level_forced = true;
			break;
		case 'V':
			buildinfo_print(stdout);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wstether: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EX_USAGE;
	}
	if (!opts->config_path && !opts->url_override)
		opts->config_path = WST_DEFAULT_CONFIG;
	return -1;
}

/* --check answers FILE:LINE: message; a starting daemon logs it like every other line */
static void config_failed(bool check, const char *msg)
{
	if (check)
		fprintf(stderr, "%s\n", msg);
	else
		log_msg(LOG_ERR, "%s", msg);
}

int main(int argc, char **argv)
{
	struct daemon_opts opts = {0};
	const struct wst_config *cfg;
	struct config_error err;
	bool check = false;
	int level = LOG_INFO, rc;

	if ((rc = parse_args(argc, argv, &opts, &check, &level)) >= 0)
		return rc;
	log_init(level);
	/* once, before any key check or handshake (TLS 1.3 needs it) */
	if (tls_global_init(err.msg, sizeof(err.msg)) < 0) {
		fprintf(stderr, "wstether: %s\n", err.msg);
		return 1;
	}
	cfg = config_load(opts.config_path, opts.url_override, &err);
	if (!cfg) {
		config_failed(check, err.msg);
		return err.status;
	}
	if (tls_check(cfg, err.msg, sizeof(err.msg)) < 0 ||
	    hello_check(cfg, err.msg, sizeof(err.msg)) < 0) {
		config_failed(check, err.msg);
		config_free(cfg);
		return 78;
	}
	if (check) {
		printf("%s: ok\n", opts.config_path ? opts.config_path : "--url");
		config_free(cfg);
		return 0;
	}
	if (!opts.log_level_forced)
		log_set_level(cfg->log_level);
	return daemon_run(cfg, &opts);
}
