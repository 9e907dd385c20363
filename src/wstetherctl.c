/* wstetherctl: send one request to a running wstether's control socket. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctl_status.h"

#define EX_USAGE 64
#define EX_UNAVAILABLE 69
#define RUN_DIR "/run/wstether"
/* The daemon's default control.socket, in its unit's RuntimeDirectory. */
#define SOCKET_NAME "wstether.ctl"
#define DEFAULT_SOCKET RUN_DIR "/" SOCKET_NAME
#define TIMEOUT_MS 10000

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: wstetherctl [-i NAME | -s SOCKET] COMMAND [ARGS...]\n"
		"Commands: status [--json|--human] | metrics | watch | send TEXT |\n"
		"          reconnect [--now] | close CODE [REASON] | pause | resume | reload\n\n"
		"  -i, --instance NAME the daemon of wstether@NAME (" RUN_DIR "/NAME/" SOCKET_NAME
		")\n"
		"  -s, --socket PATH   control socket (default " DEFAULT_SOCKET ")\n"
		"  -h, --help          this help\n"
		"  -V, --version       the version, and json-c's\n\n"
		"Prints the daemon's JSON answer; status on a terminal is shown for people\n"
		"(--json: the JSON line anyway); metrics prints the Prometheus text format,\n"
		"watch prints link events as JSON lines until interrupted. Exit status: 0 ok,\n"
		"1 the daemon refused, 64 bad usage, 69 no daemon answered. See wstetherctl(1).\n");
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The words joined by spaces, one request line. NULL: a newline in them, or no memory. */
static char *build_request(int argc, char **argv)
{
	size_t rlen = 0;
	char *req;

	for (int i = 0; i < argc; i++) {
		if (strchr(argv[i], '\n')) {
			fprintf(stderr, "wstetherctl: arguments cannot contain a newline\n");
			return NULL;
		}
		rlen += strlen(argv[i]) + 1;
	}
	req = malloc(rlen + 1);
	if (!req)
		return NULL;
	req[0] = '\0';
	for (int i = 0; i < argc; i++) {
		strcat(req, argv[i]);
		strcat(req, i + 1 < argc ? " " : "\n");
	}
	return req;
}

/* Connected fd, or -1 with the exit status in *rc. */
static int connect_to(const char *path, const char *instance, int *rc)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval timeout = {TIMEOUT_MS / 1000, TIMEOUT_MS % 1000 * 1000};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "wstetherctl: %s: socket path too long\n", path);
		*rc = EX_USAGE;
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* the answer's deadline: a daemon that hangs must not hang us */
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		char hint[160] = "";

		if (e == EACCES || e == EPERM)
			snprintf(hint, sizeof(hint),
				 " (run as root, or as a member of the socket's group)");
		else if ((e == ENOENT || e == ECONNREFUSED) && instance)
			snprintf(hint, sizeof(hint), " (is wstether@%.64s running?)", instance);
		else if (e == ENOENT || e == ECONNREFUSED)
			snprintf(hint, sizeof(hint),
				 " (is wstether running? For wstether@NAME, use -i NAME)");
		fprintf(stderr, "wstetherctl: %s: %s%s\n", path, strerror(e), hint);
		if (fd >= 0)
			close(fd);
		*rc = EX_UNAVAILABLE;
		return -1;
	}
	return fd;
}

/*
 * One answer line, NUL-terminated without its '\n'; NULL with the reason
 * printed. What came after it (watch's events) stays buffered in `in`.
 */
static char *read_answer(FILE *in, const char *path)
{
	char *ans = NULL;
	size_t cap = 0;
	ssize_t n = getline(&ans, &cap, in);

	if (n > 0 && ans[n - 1] == '\n') {
		ans[n - 1] = '\0';
		return ans;
	}
	if (ferror(in) && (errno == EAGAIN || errno == EINTR)) /* SO_RCVTIMEO ran out */
		fprintf(stderr, "wstetherctl: %s: no answer within %d s\n", path,
			TIMEOUT_MS / 1000);
	else
		fprintf(stderr, "wstetherctl: %s: the daemon closed without answering\n", path);
	free(ans);
	return NULL;
}

/*
 * `status [--json|--human]`: the JSON line is the contract scripts parse, so
 * it stays the answer unless a person reads it: on a terminal, or --human.
 * Returns 1 for the human view, 0 for JSON; the flag is taken off argv.
 */
static int status_view(int *argc, char **argv)
{
	if (*argc != 2 || strcmp(argv[0], "status"))
		return *argc == 1 && !strcmp(argv[0], "status") && isatty(STDOUT_FILENO);
	if (strcmp(argv[1], "--json") && strcmp(argv[1], "--human"))
		return 0; /* the daemon answers what is wrong with it */
	*argc = 1;
	return !strcmp(argv[1], "--human");
}

/* `metrics`: the answer carries the text format in one JSON string; print it as it is. */
static int print_metrics(const char *ans)
{
	json_object *o = json_tokener_parse(ans), *m;
	int rc = 1;

	if (o && json_object_object_get_ex(o, "metrics", &m) &&
	    json_object_is_type(m, json_type_string)) {
		fwrite(json_object_get_string(m), 1, (size_t)json_object_get_string_len(m), stdout);
		rc = fflush(stdout) == 0 ? 0 : 1;
	} else {
		puts(ans);
	}
	json_object_put(o);
	return rc;
}

/* `watch`: after the answer, the daemon writes one event per line; copy them until it closes. */
static int watch(FILE *in, const char *path)
{
	struct timeval forever = {0, 0};
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	/* events may be hours apart: only the answer has a deadline */
	if (setsockopt(fileno(in), SOL_SOCKET, SO_RCVTIMEO, &forever, sizeof(forever)) == 0)
		while ((n = getline(&line, &cap, in)) > 0)
			if (fwrite(line, 1, (size_t)n, stdout) != (size_t)n ||
			    fflush(stdout) != 0) {
				free(line);
				return 1; /* stdout closed: the reader is gone */
			}
	if (feof(in))
		fprintf(stderr, "wstetherctl: %s: the daemon closed the connection\n", path);
	else
		fprintf(stderr, "wstetherctl: %s: %s\n", path, strerror(errno));
	free(line);
	return EX_UNAVAILABLE;
}

/* Known here too, so a typo is a usage error whether or not a daemon answers. */
static bool known_command(const char *cmd)
{
	static const char *const commands[] = {"status", "metrics", "watch",  "send",	"reconnect",
					       "close",	 "pause",   "resume", "reload", NULL};

	for (const char *const *c = commands; *c; c++)
		if (!strcmp(cmd, *c))
			return true;
	return false;
}

/* /run/wstether/NAME/wstether.ctl, or NULL for a NAME that is no instance name. */
static const char *instance_socket(const char *name)
{
	static char p[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];

	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
		fprintf(stderr,
			"wstetherctl: --instance '%s': not an instance name (NAME as in "
			"wstether@NAME, /etc/wstether/NAME.conf)\n",
			name);
		return NULL;
	}
	/* too long for sun_path: connect_to says so */
	snprintf(p, sizeof(p), "%s/%s/%s", RUN_DIR, name, SOCKET_NAME);
	return p;
}

/* The command line up to the command: -1 to go on, or the exit status. */
static int parse_options(int argc, char **argv, const char **pathp, const char **instancep)
{
	static const struct option longopts[] = {
	    {"instance", required_argument, NULL, 'i'},
	    {"socket", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *instance = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "+i:s:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			instance = optarg;
			break;
		case 's':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			/* json-c is its one library; the daemon's --version names the rest */
			printf("wstetherctl %s\njson-c %s\n", WST_VERSION, json_c_version());
			return 0;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	if (!known_command(argv[optind])) {
		fprintf(stderr, "wstetherctl: unknown command '%s'; see wstetherctl --help\n",
			argv[optind]);
		return EX_USAGE;
	}
	if (instance && path) {
		fprintf(stderr, "wstetherctl: --instance and --socket: give one\n");
		return EX_USAGE;
	}
	if (instance && !(path = instance_socket(instance)))
		return EX_USAGE;
	*pathp = path ? path : DEFAULT_SOCKET;
	*instancep = instance;
	return -1;
}

int main(int argc, char **argv)
{
	const char *path, *instance;
	char *req, *ans = NULL;
	int fd, rc, human, nargs;
	FILE *in = NULL;

	if ((rc = parse_options(argc, argv, &path, &instance)) >= 0)
		return rc;
	rc = 1;
	nargs = argc - optind;
	human = status_view(&nargs, argv + optind);
	req = build_request(nargs, argv + optind);
	if (!req)
		return EX_USAGE;
	fd = connect_to(path, instance, &rc);
	if (fd < 0) {
		free(req);
		return rc;
	}
	if (write_all(fd, req, strlen(req)) < 0 || !(in = fdopen(fd, "r")))
		fprintf(stderr, "wstetherctl: %s: %s\n", path, strerror(errno));
	else
		ans = read_answer(in, path);
	free(req);
	if (!ans) {
		if (in)
			fclose(in);
		else
			close(fd);
		return EX_UNAVAILABLE;
	}
	rc = strncmp(ans, "{\"ok\":true", 10) == 0 ? 0 : 1;
	if (rc == 0 && !strcmp(argv[optind], "metrics") && argc - optind == 1) {
		rc = print_metrics(ans);
	} else if (rc == 0 && human && ctl_status_render(ans, path, time(NULL), stdout) == 0) {
		rc = fflush(stdout) == 0 ? 0 : 1;
	} else {
		puts(ans);
		if (rc == 0 && !strcmp(argv[optind], "watch") && argc - optind == 1) {
			fflush(stdout);
			rc = watch(in, path);
		}
	}
	fclose(in);
	free(ans);
	return rc;
}
