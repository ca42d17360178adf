// The sd_notify side of vigil: a datagram socket children send `READY=1`, `FDSTORE=1`, ...
// to, with SO_PASSCRED so each datagram carries its sender's pid, and SCM_RIGHTS for the
// descriptors a child hands over to keep.
#define _GNU_SOURCE
#include "cshim.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int vigil_notify_socket(const char *path) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof addr.sun_path) return -ENAMETOOLONG;
    memcpy(addr.sun_path, path, len);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    int one = 1;
    // A big receive buffer: 1,000 children saying READY=1 at once must not be dropped.
    int size = 8 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) == 0
        || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) goto fail;
    unlink(path);  // a stale socket of an earlier vigil (the state lock proves it is gone)
    if (bind(fd, (struct sockaddr *)&addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1)) < 0) goto fail;
    if (chmod(path, 0600) < 0) goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    return -e;
}

ssize_t vigil_notify_receive(int fd, uint8_t *buffer, size_t capacity, pid_t *pid, uid_t *uid,
                             int *fds, int max_fds, int *fd_count) {
    struct iovec iov = {.iov_base = buffer, .iov_len = capacity};
    // Room for the credentials and for as many descriptors as systemd accepts in one go.
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 253)];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control};
    *pid = 0;
    *uid = (uid_t)-1;
    *fd_count = 0;
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
    if (n < 0) return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(c), sizeof cred);
            *pid = cred.pid;
            *uid = cred.uid;
        } else if (c->cmsg_type == SCM_RIGHTS) {
            int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            int *received = (int *)CMSG_DATA(c);
            for (int i = 0; i < count; i++) {
                if (*fd_count < max_fds) {
                    fds[(*fd_count)++] = received[i];
                } else {
                    close(received[i]);  // more than the caller can take: never leaked
                }
            }
        }
    }
    // A datagram cut short (MSG_TRUNC) reports its full length: the caller refuses it.
    return n;
}

int vigil_same_file(int a, int b) {
    struct stat sa, sb;
    if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int vigil_dup_above(int fd, int minimum) {
    int d = fcntl(fd, F_DUPFD_CLOEXEC, minimum);
    return d < 0 ? -errno : d;
}
