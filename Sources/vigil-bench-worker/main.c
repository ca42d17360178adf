/*
 * vigil-bench-worker: the supervised program of Vigil's benchmarks (vigil-bench,
 * Benchmarks/anchors/vigil.sh). By default the same as shared/bench/src/worker.c (first
 * thing in main: one "<pid> <CLOCK_REALTIME ns>" line appended to $BENCH_LOG) plus vigil's
 * READY: the single byte 0x01 on the channel named by $VIGIL_FD. Then it sleeps forever.
 * Written in C so the measurement is vigil's cost, not a language runtime's start-up.
 *
 * Options, all off unless set (each adds work only when set):
 *   BENCH_HEARTBEAT=1      after READY, a heartbeat (0x02) every $VIGIL_HEARTBEAT_MS
 *                          (default 1000) instead of sleeping: an idle, healthy worker.
 *   BENCH_FLOOD_RATE=R     after READY, heartbeats at R per second (paced in 10 ms ticks,
 *                          MSG_DONTWAIT), and once a second one line
 *                          "<pid> <ns> <sent> <full>" appended to $BENCH_COUNTS:
 *                          `full` counts sends that found the channel full (its queue
 *                          holds net.unix.max_dgram_qlen frames); what was due then
 *                          stays due, so `sent` falls behind the rate if vigil does.
 *   BENCH_STATE_BYTES=N    a state of N bytes kept in a memfd in vigil's descriptor store
 *                          (FDSTORE=1, FDNAME=state on $NOTIFY_SOCKET). If the store gave
 *                          one back ($LISTEN_FDS/$LISTEN_FDNAMES), it is read in full and
 *                          checked before READY (the restore a restart pays for); else a
 *                          fresh one is written and stored before READY.
 * It dies with vigil (PR_SET_PDEATHSIG), so a benchmark that loses vigil leaves nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long env_long(const char *k, long fallback) {
    const char *v = getenv(k);
    return v && *v ? atol(v) : fallback;
}

static void append_line(const char *path, const char *line, int n) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, (size_t)n) != n) _exit(111);
    close(fd);
}

/* The byte at offset i of the state: a pattern the restore checks. */
static unsigned char pattern(size_t i) { return (unsigned char)(i * 131u + 7u); }

/* FDSTORE=1 FDNAME=state with `fd` attached, to $NOTIFY_SOCKET. */
static void store_fd(int fd) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) _exit(112);
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (s < 0 || len >= sizeof sa.sun_path) _exit(112);
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@') sa.sun_path[0] = 0;
    char text[] = "FDSTORE=1\nFDNAME=state";
    struct iovec iov = {.iov_base = text, .iov_len = sizeof text - 1};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    struct msghdr m = {.msg_name = &sa, .msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len),
                       .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    if (sendmsg(s, &m, MSG_NOSIGNAL) < 0) _exit(112);
    close(s);
}

static void state(size_t bytes) {
    long listening = env_long("LISTEN_FDS", 0);
    const char *names = getenv("LISTEN_FDNAMES");
    if (listening >= 1 && names && strncmp(names, "state", 5) == 0) {
        /* Restore: read the whole state into memory and check it, as a worker must. */
        unsigned char *buf = malloc(bytes);
        size_t got = 0;
        while (buf && got < bytes) {
            ssize_t n = pread(3, buf + got, bytes - got, (off_t)got);
            if (n <= 0) _exit(113);
            got += (size_t)n;
        }
        for (size_t i = 0; i < bytes; i += 4096)
            if (buf[i] != pattern(i)) _exit(113);
        free(buf);
        return;
    }
    int fd = memfd_create("state", MFD_CLOEXEC);
    unsigned char *buf = malloc(bytes);
    if (fd < 0 || !buf) _exit(112);
    for (size_t i = 0; i < bytes; i++) buf[i] = pattern(i);
    if (write(fd, buf, bytes) != (ssize_t)bytes) _exit(112);
    free(buf);
    store_fd(fd);
    close(fd);
}

int main(void) {
    int64_t started = now_ns(CLOCK_REALTIME);
    const char *path = getenv("BENCH_LOG");
    if (path && *path) {
        char line[64];
        int n = snprintf(line, sizeof line, "%ld %lld\n", (long)getpid(), (long long)started);
        append_line(path, line, n);
    }
    const char *channel = getenv("VIGIL_FD");
    int ch = channel && *channel ? atoi(channel) : -1;
    if (ch >= 0) (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    long state_bytes = env_long("BENCH_STATE_BYTES", 0);
    if (state_bytes > 0) state((size_t)state_bytes);
    if (ch >= 0) {
        unsigned char ready = 0x01;
        if (send(ch, &ready, 1, MSG_NOSIGNAL) != 1) return 111;
    }
    long rate = env_long("BENCH_FLOOD_RATE", 0);
    if (ch >= 0 && rate > 0) {
        const char *counts = getenv("BENCH_COUNTS");
        unsigned char beat = 0x02;
        long long sent = 0, dropped = 0;
        int64_t t0 = now_ns(CLOCK_MONOTONIC), next_report = t0 + 1000000000LL;
        struct timespec tick = {0, 10000000};
        for (;;) {
            nanosleep(&tick, NULL);
            int64_t t = now_ns(CLOCK_MONOTONIC);
            long long due = (long long)((t - t0) / 1000000LL) * rate / 1000 - sent;
            for (long long i = 0; i < due; i++) {
                if (send(ch, &beat, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1) { sent++; continue; }
                dropped++;  /* channel full: the rest is still due, sent on the next tick */
                break;
            }
            if (counts && *counts && t >= next_report) {
                char line[96];
                int n = snprintf(line, sizeof line, "%ld %lld %lld %lld\n", (long)getpid(),
                                 (long long)now_ns(CLOCK_REALTIME), sent, dropped);
                append_line(counts, line, n);
                next_report += 1000000000LL;
            }
        }
    }
    if (ch >= 0 && getenv("BENCH_HEARTBEAT")) {
        long ms = env_long("VIGIL_HEARTBEAT_MS", 1000);
        long long every = (long long)ms * 1000000LL;
        unsigned char beat = 0x02;
        /* As the SDK does: beat at multiples of the interval on CLOCK_MONOTONIC, so all
         * workers' beats reach vigil together (see Worker.nextBeat). */
        for (;;) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long long t = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
            long long next = (t / every + 1) * every;
            if (next - t < every / 2) next += every;
            struct timespec at = {(time_t)(next / 1000000000LL), (long)(next % 1000000000LL)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR) {}
            if (send(ch, &beat, 1, MSG_NOSIGNAL) != 1) return 0;  /* vigil gone */
        }
    }
    for (;;) pause();
}
