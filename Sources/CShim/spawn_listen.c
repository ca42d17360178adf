// Spawning a child that is handed stored descriptors the systemd way (LISTEN_FDS from fd
// 3, LISTEN_PID = its own pid). posix_spawn cannot set LISTEN_PID, which only exists after
// the fork, so this path forks itself; the child calls only async-signal-safe functions.
#define _GNU_SOURCE
#include "cshim.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/// Writes "LISTEN_PID=<pid>" into slot (at least 32 bytes) without printf.
static void write_listen_pid(char *slot, pid_t pid) {
    static const char prefix[] = "LISTEN_PID=";
    char digits[16];
    int n = 0;
    unsigned long v = (unsigned long)pid;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v && n < 15);
    memcpy(slot, prefix, sizeof prefix - 1);
    char *p = slot + sizeof prefix - 1;
    while (n) *p++ = digits[--n];
    *p = 0;
}

int vigil_spawn_listen(const char *path, char *const argv[], char *const envp[], const char *cwd,
                       const int *inherit, int inherit_count, int output, char *listen_pid_slot, pid_t *pid) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0) return errno;
    pid_t child = fork();
    if (child < 0) {
        int e = errno;
        close(report[0]);
        close(report[1]);
        return e;
    }
    if (child == 0) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; s++) sigaction(s, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int e = 0;
        if (setsid() < 0) goto failed;  // its own session and group, as in vigil_spawn
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0) goto failed;
        if (output >= 0 && (dup2(output, 1) < 0 || dup2(output, 2) < 0)) goto failed;
        // Lift every source above the targets first, so no dup2 overwrites another source.
        int floor = 3 + inherit_count + 1;
        if (report[1] < floor) {
            int r = fcntl(report[1], F_DUPFD_CLOEXEC, floor);
            if (r < 0) goto failed;
            report[1] = r;
            floor = r + 1;
        }
        int lifted[256];
        if (inherit_count > 256) { errno = EMFILE; goto failed; }
        for (int i = 0; i < inherit_count; i++) {
            lifted[i] = fcntl(inherit[i], F_DUPFD, floor);
            if (lifted[i] < 0) goto failed;
            if (lifted[i] >= floor) floor = lifted[i] + 1;
        }
        for (int i = 0; i < inherit_count; i++) {
            if (dup2(lifted[i], 3 + i) < 0) goto failed;
        }
        // Close everything above the handed-over range except the report pipe (CLOEXEC).
        for (int fd = 3 + inherit_count; fd < floor; fd++) {
            if (fd != report[1]) close(fd);
        }
        syscall(SYS_close_range, (unsigned)floor, ~0U, 0);
        if (cwd && cwd[0] && chdir(cwd) < 0) goto failed;
        if (listen_pid_slot) write_listen_pid(listen_pid_slot, getpid());
        execve(path, argv, envp);
    failed:
        e = errno;
        (void)!write(report[1], &e, sizeof e);
        _exit(127);
    }
    close(report[1]);
    int e = 0;
    ssize_t got;
    do { got = read(report[0], &e, sizeof e); } while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == (ssize_t)sizeof e) {
        waitpid(child, NULL, 0);  // it never ran the program: reap it here
        return e ? e : EIO;
    }
    *pid = child;
    return 0;
}
