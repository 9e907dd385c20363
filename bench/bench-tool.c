/*
 * bench-tool: the two C helpers of bench/run, built to stay out of the way.
 *
 *   cc -O2 -Wall -Wextra -o bench/bench-tool bench/bench-tool.c
 *
 *   bench-tool sink EXPECTED
 *       Reads standard input (a client's stdout) in 1 MiB reads and checks
 *       it, as it arrives, against the file EXPECTED (the client's stdin):
 *       every byte, in order. Prints one line on stdout:
 *         ok BYTES T_FIRST T_LAST          (CLOCK_MONOTONIC seconds)
 *       T_FIRST is when the first byte arrived, T_LAST when the last expected
 *       byte did; it keeps reading to EOF so the client never sees EPIPE. On
 *       a difference, extra bytes or a short stream:
 *         fail REASON...                   (exit 1)
 *
 *   bench-tool bridge SOCKET lines|length-prefixed INPUT [TIMEOUT_S]
 *       A bridge-socket client. INPUT holds '\n'-terminated lines, one
 *       message each. They are framed for the socket beforehand (lines: as
 *       is; length-prefixed: 0x01 text, 4-byte big-endian length, payload),
 *       then it connects to the unix socket SOCKET and, in one poll() loop
 *       over a non-blocking socket, writes the whole stream in writes of up
 *       to 1 MiB while reading the echoes in reads of up to 1 MiB, checking
 *       them byte for byte against what it sent (the daemon frames a server
 *       message exactly as the client framed it). Prints
 *         ok BYTES T_FIRST T_LAST T_CONNECT MESSAGES
 *       or "fail ..." (exit 1). TIMEOUT_S (default 60): give up after that
 *       long without progress.
 *
 *   bench-tool exec FILE -- COMMAND [ARG...]
 *       Runs COMMAND, waits for it and writes "MAXRSS_KIB USER_S SYS_S STATUS"
 *       to FILE; exits with its exit status. For the peak RSS of a client:
 *       Linux counts the memory of the process image that exec replaced in
 *       ru_maxrss, so a client started straight from the (big) benchmark
 *       script would report the script's RSS; started from this small
 *       program it reports its own. SIGTERM/SIGINT are passed on to COMMAND.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define IO_CHUNK (1u << 20)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const unsigned char *map_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        printf("fail cannot open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    *len = (size_t)st.st_size;
    if (*len == 0) {
        close(fd);
        return (const unsigned char *)"";
    }
    void *p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) {
        printf("fail cannot map %s: %s\n", path, strerror(errno));
        exit(1);
    }
    close(fd);
    return p;
}

/* Where a and b first differ, as a message index and offset for the report. */
static void report_diff(const unsigned char *exp, size_t at, const unsigned char *got,
                        size_t n)
{
    size_t i = 0;
    while (i < n && exp[at + i] == got[i])
        i++;
    size_t off = at + i, line = 0;
    for (size_t k = 0; k < off; k++)
        line += exp[k] == '\n';
    printf("fail MISMATCH at byte %zu (line/message ~%zu): expected 0x%02x, got 0x%02x\n", off,
           line, exp[off], got[i]);
    exit(1);
}

static int sink(const char *expected)
{
    size_t elen, got = 0;
    const unsigned char *exp = map_file(expected, &elen);
    unsigned char *buf = malloc(IO_CHUNK);
    double t_first = 0, t_last = 0;
    if (!buf)
        return 1;
    fcntl(0, F_SETPIPE_SZ, 1 << 20); /* fewer wake-ups; fails harmlessly on a non-pipe */
    for (;;) {
        ssize_t r = read(0, buf, IO_CHUNK);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            printf("fail read: %s\n", strerror(errno));
            return 1;
        }
        if (r == 0)
            break;
        if (!got)
            t_first = now();
        if (got + (size_t)r > elen) {
            printf("fail EXTRA output: %zu bytes expected, more arrived\n", elen);
            return 1;
        }
        if (memcmp(exp + got, buf, (size_t)r) != 0)
            report_diff(exp, got, buf, (size_t)r);
        got += (size_t)r;
        if (got == elen)
            t_last = now();
    }
    if (got != elen) {
        size_t lines = 0;
        for (size_t k = 0; k < got; k++)
            lines += exp[k] == '\n';
        printf("fail SHORT: %zu of %zu bytes (%zu lines) came back, an in-order prefix\n", got,
               elen, lines);
        return 1;
    }
    printf("ok %zu %.6f %.6f\n", got, t_first, t_last);
    return 0;
}

static int bridge(const char *path, const char *framing, const char *input, double timeout)
{
    size_t ilen, n_msgs = 0;
    const unsigned char *in = map_file(input, &ilen);
    unsigned char *stream;
    size_t slen;
    int lp;

    if (!strcmp(framing, "lines"))
        lp = 0;
    else if (!strcmp(framing, "length-prefixed"))
        lp = 1;
    else {
        printf("fail unknown framing '%s'\n", framing);
        return 64;
    }
    for (size_t k = 0; k < ilen; k++)
        n_msgs += in[k] == '\n';
    if (!lp) {
        stream = (unsigned char *)in;
        slen = ilen;
    } else {
        /* each line: 0x01, length, payload (without the '\n') */
        slen = ilen - n_msgs + 5 * n_msgs;
        stream = malloc(slen);
        if (!stream)
            return 1;
        size_t o = 0, start = 0;
        for (size_t k = 0; k < ilen; k++) {
            if (in[k] != '\n')
                continue;
            uint32_t n = (uint32_t)(k - start);
            stream[o++] = 0x01;
            stream[o++] = (unsigned char)(n >> 24);
            stream[o++] = (unsigned char)(n >> 16);
            stream[o++] = (unsigned char)(n >> 8);
            stream[o++] = (unsigned char)n;
            memcpy(stream + o, in + start, n);
            o += n;
            start = k + 1;
        }
    }
    /* touch it all now, not while timing */
    volatile unsigned char sum = 0;
    for (size_t k = 0; k < slen; k += 4096)
        sum += stream[k];
    (void)sum;

    unsigned char *buf = malloc(IO_CHUNK);
    if (!buf)
        return 1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        printf("fail socket path too long\n");
        return 1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        printf("fail connect %s: %s\n", path, strerror(errno));
        return 1;
    }
    double t_connect = now(), t_first = 0, t_last = 0, t_progress = t_connect;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t sent = 0, got = 0;
    while (got < slen) {
        struct pollfd pf = {.fd = fd, .events = POLLIN | (sent < slen ? POLLOUT : 0)};
        int pr = poll(&pf, 1, 1000);
        if (pr < 0 && errno != EINTR) {
            printf("fail poll: %s\n", strerror(errno));
            return 1;
        }
        if (pr <= 0) {
            if (now() - t_progress > timeout) {
                printf("fail TIMEOUT: no progress for %.0f s; sent %zu of %zu bytes, %zu "
                       "came back\n", timeout, sent, slen, got);
                return 1;
            }
            continue;
        }
        if ((pf.revents & POLLOUT) && sent < slen) {
            size_t want = slen - sent > IO_CHUNK ? IO_CHUNK : slen - sent;
            ssize_t w = write(fd, stream + sent, want);
            if (w > 0) {
                sent += (size_t)w;
                t_progress = now();
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                printf("fail write: %s (sent %zu, got %zu of %zu)\n", strerror(errno), sent,
                       got, slen);
                return 1;
            }
        }
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(fd, buf, IO_CHUNK);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                printf("fail the daemon closed the socket (%s): sent %zu, got %zu of %zu "
                       "bytes\n", r ? strerror(errno) : "EOF", sent, got, slen);
                return 1;
            }
            if (r > 0) {
                if (!got)
                    t_first = now();
                if (got + (size_t)r > slen) {
                    printf("fail EXTRA bytes from the daemon\n");
                    return 1;
                }
                if (memcmp(stream + got, buf, (size_t)r) != 0)
                    report_diff(stream, got, buf, (size_t)r);
                got += (size_t)r;
                t_progress = now();
            }
        }
    }
    t_last = now();
    close(fd);
    printf("ok %zu %.6f %.6f %.6f %zu\n", got, t_first, t_last, t_connect, n_msgs);
    return 0;
}

static volatile pid_t child;

static void forward(int sig)
{
    if (child > 0)
        kill(child, sig);
}

static int run_exec(const char *file, char **cmd)
{
    struct sigaction sa = {.sa_handler = forward};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench-tool exec: fork");
        return 127;
    }
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        execvp(cmd[0], cmd);
        fprintf(stderr, "bench-tool exec: %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    child = pid;
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR) {
            perror("bench-tool exec: wait4");
            return 127;
        }
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *f = fopen(file, "w");
    if (f) {
        fprintf(f, "%ld %.6f %.6f %d\n", ru.ru_maxrss,
                ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
                ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, rc);
        fclose(f);
    }
    return rc;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN); /* a dropped bridge client: report EPIPE, do not die */
    if (argc == 3 && !strcmp(argv[1], "sink"))
        return sink(argv[2]);
    if (argc >= 5 && !strcmp(argv[1], "exec") && !strcmp(argv[3], "--"))
        return run_exec(argv[2], argv + 4);
    if ((argc == 5 || argc == 6) && !strcmp(argv[1], "bridge"))
        return bridge(argv[2], argv[3], argv[4], argc == 6 ? atof(argv[5]) : 60.0);
    fprintf(stderr, "usage: bench-tool sink EXPECTED\n"
                    "       bench-tool bridge SOCKET lines|length-prefixed INPUT [TIMEOUT_S]\n"
                    "       bench-tool exec FILE -- COMMAND [ARG...]\n");
    return 64;
}
