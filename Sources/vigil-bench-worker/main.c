/*
 * vigil-bench-worker: the supervised program of the resurrection benchmark, the same as
 * shared/bench/src/worker.c (first thing in main: one "<pid> <CLOCK_REALTIME ns>" line
 * appended to $BENCH_LOG) plus vigil's READY: the single byte 0x01 on the channel named
 * by $VIGIL_FD. Then it sleeps forever. Written in C so the measurement is vigil's cost,
 * not a language runtime's start-up.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const char *path = getenv("BENCH_LOG");
    if (path && *path) {
        char line[64];
        int n = snprintf(line, sizeof line, "%ld %lld\n", (long)getpid(),
                         (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, line, (size_t)n) != n) return 111;
        close(fd);
    }
    const char *channel = getenv("VIGIL_FD");
    if (channel && *channel) {
        unsigned char ready = 0x01;
        if (send(atoi(channel), &ready, 1, MSG_NOSIGNAL) != 1) return 111;
    }
    for (;;) pause();
}
