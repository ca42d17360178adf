#define _GNU_SOURCE
#include "cshim.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

const uint32_t VIGIL_EPOLLIN = EPOLLIN;
const uint32_t VIGIL_EPOLLOUT = EPOLLOUT;
const uint32_t VIGIL_EPOLLERR = EPOLLERR;
const uint32_t VIGIL_EPOLLHUP = EPOLLHUP;
const uint32_t VIGIL_EPOLLRDHUP = EPOLLRDHUP;

int vigil_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int vigil_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    int kop = op == 0 ? EPOLL_CTL_ADD : op == 1 ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
    return epoll_ctl(epfd, kop, fd, &ev) < 0 ? -errno : 0;
}

int vigil_epoll_wait(int epfd, vigil_event *out, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        out[i].events = evs[i].events;
        out[i].data = evs[i].data.u64;
    }
    return n;
}

int vigil_signalfd_for(const int *signals, int count) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -errno;
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int vigil_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    if (n == (ssize_t)sizeof info) return (int)info.ssi_signo;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    return n < 0 ? -errno : -EIO;
}

int vigil_timerfd_create(void) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int vigil_timerfd_arm(int fd, int64_t deadline_ns) {
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    if (deadline_ns > 0) {
        spec.it_value.tv_sec = deadline_ns / 1000000000;
        spec.it_value.tv_nsec = deadline_ns % 1000000000;
    }
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL) < 0 ? -errno : 0;
}

void vigil_timerfd_drain(int fd) {
    uint64_t count;
    while (read(fd, &count, sizeof count) == (ssize_t)sizeof count) {}
}

static int64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t vigil_monotonic_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
int64_t vigil_realtime_ns(void) { return clock_ns(CLOCK_REALTIME); }

int vigil_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
                const int *inherit, int inherit_count, int output, pid_t *pid) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc) { posix_spawn_file_actions_destroy(&fa); return rc; }

    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    // A session of its own (hence a process group of its own, pgid = pid), as systemd
    // starts a service: when vigil dies, a stopped worker's group does not become an
    // orphaned process group, which the kernel would SIGHUP (killing it) and SIGCONT.
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);

    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    // stdout and stderr first, before the inherited descriptors take their numbers.
    if (output >= 0) {
        posix_spawn_file_actions_adddup2(&fa, output, 1);
        posix_spawn_file_actions_adddup2(&fa, output, 2);
    }
    for (int i = 0; i < inherit_count; i++)
        posix_spawn_file_actions_adddup2(&fa, inherit[i], 3 + i);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3 + inherit_count);
    if (cwd && cwd[0]) posix_spawn_file_actions_addchdir_np(&fa, cwd);

    rc = posix_spawn(pid, path, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

int vigil_reap(int idtype, pid_t id, pid_t *pid, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    idtype_t t = idtype == 1 ? P_PID : idtype == 2 ? P_PGID : P_ALL;
    if (waitid(t, (id_t)id, &info, WEXITED | WNOHANG) < 0) return -errno;
    if (info.si_pid == 0) return 0;
    *pid = info.si_pid;
    *code = info.si_code == CLD_EXITED ? 1 : info.si_code == CLD_KILLED ? 2 : 3;
    *status = info.si_status;
    return 1;
}

int vigil_pidfd_open(pid_t pid) {
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
}

int vigil_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 ? -errno : 0;
}

int vigil_set_pdeathsig(int sig) {
    return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) < 0 ? -errno : 0;
}

int vigil_getppid(void) { return (int)getppid(); }

int vigil_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -errno;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

int vigil_accept(int fd) {
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    return c < 0 ? -errno : c;
}

int vigil_seqpacket_pair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0 ? -errno : 0;
}

int vigil_move_fd_above(int fd, int minimum) {
    if (fd >= minimum) return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, minimum);
    if (moved < 0) return -errno;
    close(fd);
    return moved;
}

int vigil_set_nonblocking(int fd, int on) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -errno;
    flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, flags) < 0 ? -errno : 0;
}

int vigil_output_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) < 0) return -errno;
    int flags = fcntl(fds[0], F_GETFL);
    fcntl(fds[0], F_SETFL, flags | O_NONBLOCK);
    // A roomy pipe: a burst of output (10,000 lines in a TERM handler) is not throttled.
    fcntl(fds[0], F_SETPIPE_SZ, 1 << 20);
    return 0;
}
