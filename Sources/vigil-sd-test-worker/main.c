// A test worker written against libsystemd only, as an unmodified daemon would be: it
// knows nothing of vigil's channel. It reads back the memfd named "state" that its
// previous incarnation stored with FDSTORE=1 (sd_listen_fds_with_names), stores a fresh
// one saying "incarnation <VIGIL_INCARNATION>", then reports READY=1 and
// STATUS=restored=<what it read> (or "restored=none"), and pings WATCHDOG=1 every 200 ms
// until SIGTERM. Spawned by the integration tests with `readiness: notify`. SDW_SAY=TEXT
// sends one more notification after READY (`\n` in TEXT for a newline). SDW_FORK=1 makes it
// a forking daemon: the first process forks the real one, says MAINPID=<its pid> and exits.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }

int main(void) {
    signal(SIGTERM, on_term);
    if (getenv("SDW_FORK")) {
        pid_t daemon = fork();
        if (daemon < 0) return 1;
        if (daemon > 0) {
            char text[64];
            snprintf(text, sizeof text, "MAINPID=%d", (int)daemon);
            sd_pid_notify(0, 0, text);
            _exit(0);
        }
    }
    char restored[256] = "none";
    char **names = NULL;
    int n = sd_listen_fds_with_names(1, &names);  // 1: unset LISTEN_* so no child sees them
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        if (names && strcmp(names[i], "state") == 0) {
            ssize_t got = pread(fd, restored, sizeof restored - 1, 0);
            restored[got > 0 ? got : 0] = 0;
            if (got <= 0) strcpy(restored, "empty");
        }
        close(fd);
    }
    const char *inc = getenv("VIGIL_INCARNATION");
    char state[64];
    int len = snprintf(state, sizeof state, "incarnation %s", inc ? inc : "?");
    int memfd = memfd_create("state", MFD_CLOEXEC);
    if (memfd < 0 || write(memfd, state, (size_t)len) != len) {
        fprintf(stderr, "vigil-sd-test-worker: memfd: %s\n", strerror(errno));
        return 1;
    }
    // Replace the stored state: drop the old one by name, store the new one.
    sd_pid_notify(0, 0, "FDSTOREREMOVE=1\nFDNAME=state");
    int r = sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=state", &memfd, 1);
    if (r <= 0) {
        fprintf(stderr, "vigil-sd-test-worker: FDSTORE failed: %s\n", r < 0 ? strerror(-r) : "NOTIFY_SOCKET unset");
        return 1;
    }
    close(memfd);
    if (getenv("SDW_READY_FROM_HELPER")) {
        // As a script running `systemd-notify --ready` would: a helper process says it and
        // exits at once, and is reaped here before vigil may even have read it.
        pid_t helper = fork();
        if (helper == 0) {
            sd_notifyf(0, "READY=1\nSTATUS=ready via helper %d", (int)getpid());
            _exit(0);
        }
        waitpid(helper, NULL, 0);
    } else {
        sd_notifyf(0, "READY=1\nSTATUS=restored=%s", restored);
    }
    // SDW_SAY: one more notification after READY, as written (\n for newlines).
    const char *say = getenv("SDW_SAY");
    if (say) {
        char text[512];
        size_t j = 0;
        for (size_t i = 0; say[i] && j + 1 < sizeof text; i++) {
            if (say[i] == '\\' && say[i + 1] == 'n') { text[j++] = '\n'; i++; } else text[j++] = say[i];
        }
        text[j] = 0;
        sd_notify(0, text);
    }
    while (!stop) {
        usleep(200 * 1000);
        sd_notify(0, "WATCHDOG=1");
    }
    sd_notify(0, "STOPPING=1");
    return 0;
}
