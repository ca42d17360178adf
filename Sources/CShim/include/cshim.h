// CShim: the few Linux calls Swift cannot reach through Glibc (variadic syscall, prctl,
// epoll, signalfd, timerfd, pidfd, _GNU_SOURCE spawn flags, siginfo unions, SO_PEERCRED).
// Each wrapper is tiny and non-inline; errors are returned as -errno or via errno.
#ifndef VIGIL_CSHIM_H
#define VIGIL_CSHIM_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>

/// One readiness event from vigil_epoll_wait.
typedef struct vigil_event {
    uint32_t events;
    uint64_t data;
} vigil_event;

/// epoll flag values, re-exported because the EPOLL* enum does not import cleanly.
extern const uint32_t VIGIL_EPOLLIN;
extern const uint32_t VIGIL_EPOLLOUT;
extern const uint32_t VIGIL_EPOLLERR;
extern const uint32_t VIGIL_EPOLLHUP;
extern const uint32_t VIGIL_EPOLLRDHUP;

int vigil_epoll_create(void);
/// op: 0 add, 1 modify, 2 delete. Returns 0 or -errno.
int vigil_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// Returns the number of events, 0 on timeout or EINTR, -errno on failure.
int vigil_epoll_wait(int epfd, vigil_event *out, int max, int timeout_ms);

/// Blocks the given signals in the calling thread (do it first in main, before any thread
/// exists, so every thread inherits the mask) and returns a non-blocking CLOEXEC signalfd
/// for them, or -errno.
int vigil_signalfd_for(const int *signals, int count);
/// Reads one pending signal: returns its number, 0 when none is pending, -errno on error.
int vigil_signalfd_read(int fd);

/// A non-blocking CLOEXEC CLOCK_MONOTONIC timerfd, or -errno.
int vigil_timerfd_create(void);
/// Arms the timer at an absolute CLOCK_MONOTONIC time in ns; 0 disarms. 0 or -errno.
int vigil_timerfd_arm(int fd, int64_t deadline_ns);
/// Consumes the expiration count so the fd stops being readable.
void vigil_timerfd_drain(int fd);

int64_t vigil_monotonic_ns(void);
int64_t vigil_realtime_ns(void);

/// Spawns `path` in a new session and process group (its pid is both ids), with an empty signal
/// mask, default dispositions, stdin from /dev/null, optional working directory, and
/// `inherit_count` descriptors from `inherit` placed at fds 3, 4, ... (each source must be
/// >= 3 + inherit_count so a dup2 never overwrites another source). Every other descriptor
/// above 2 is closed. With `output` >= 0, stdout and stderr both go to it (else they are
/// vigil's own). Returns 0 and sets *pid, or an errno value (exec failures included).
int vigil_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
                const int *inherit, int inherit_count, int output, pid_t *pid);
/// A pipe for a child's stdout and stderr: fds[0] (vigil's) non-blocking, 1 MiB where the
/// kernel allows; both CLOEXEC. 0 or -errno.
int vigil_output_pipe(int fds[2]);

/// Reaps one exited child: waitid(idtype, id, WEXITED|WNOHANG). idtype 0 = P_ALL,
/// 1 = P_PID, 2 = P_PGID. Returns 1 and fills pid/code/status when one was reaped
/// (code: 1 exited, 2 killed, 3 dumped), 0 when none is ready, -errno (ECHILD: none left).
int vigil_reap(int idtype, pid_t id, pid_t *pid, int *code, int *status);

int vigil_pidfd_open(pid_t pid);
int vigil_set_child_subreaper(void);
/// Asks the kernel to send `sig` to the caller when its parent thread exits.
int vigil_set_pdeathsig(int sig);
int vigil_getppid(void);

/// SO_PEERCRED of a connected Unix socket. 0 or -errno.
int vigil_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid);
/// accept4 with SOCK_CLOEXEC|SOCK_NONBLOCK. fd or -errno.
int vigil_accept(int fd);
/// A SOCK_SEQPACKET socketpair, both ends CLOEXEC. 0 or -errno.
int vigil_seqpacket_pair(int fds[2]);
/// Moves fd to the lowest free number >= minimum, CLOEXEC, and closes the old one.
int vigil_move_fd_above(int fd, int minimum);
/// Sets or clears O_NONBLOCK. 0 or -errno.
int vigil_set_nonblocking(int fd, int on);

/// The sd_notify socket: AF_UNIX datagram, CLOEXEC, non-blocking, SO_PASSCRED, bound at
/// `path` (a stale file there is removed) with mode 0600. fd or -errno.
int vigil_notify_socket(const char *path);
/// Receives one datagram: its length (more than `capacity` when it was cut short), the
/// sender's pid and uid (0 and -1 when the kernel gave none), and up to `max_fds`
/// descriptors it carried (CLOEXEC; any beyond are closed). -errno (EAGAIN: none).
ssize_t vigil_notify_receive(int fd, uint8_t *buffer, size_t capacity, pid_t *pid, uid_t *uid,
                             int *fds, int max_fds, int *fd_count);
/// 1 when both descriptors refer to the same file (device and inode), else 0.
int vigil_same_file(int a, int b);
/// A CLOEXEC duplicate of fd at the lowest free number >= minimum; the original stays.
int vigil_dup_above(int fd, int minimum);
/// Like vigil_spawn, but by fork+execve, so the child can write its own pid into
/// `listen_pid_slot` (an envp entry of at least 32 bytes) as "LISTEN_PID=<pid>": systemd's
/// socket-passing protocol. `inherit` may hold any descriptors (they are lifted above the
/// targets first). Returns 0 and sets *pid, or an errno value (exec failures included).
int vigil_spawn_listen(const char *path, char *const argv[], char *const envp[], const char *cwd,
                       const int *inherit, int inherit_count, int output, char *listen_pid_slot, pid_t *pid);

// Re-adoption (adopt.c).
/// A listening SOCK_SEQPACKET socket at `path` (non-blocking, CLOEXEC, mode 0600), a stale
/// file there removed first. fd or -errno.
int vigil_seqpacket_listen(const char *path, int backlog);
/// A blocking, CLOEXEC SOCK_SEQPACKET connection to `path`. fd or -errno.
int vigil_seqpacket_connect(const char *path);
/// A new read end (non-blocking, CLOEXEC) of the pipe at descriptor `target_fd` of `pid`,
/// opened through /proc. fd or -errno.
int vigil_open_pipe_of(pid_t pid, int target_fd);
/// 1 when fd is a pipe or FIFO.
int vigil_is_pipe(int fd);

#endif
