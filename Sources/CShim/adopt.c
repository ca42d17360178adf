// Re-adoption: the socket a worker that outlived vigil reaches the next vigil on, and the
// calls vigil needs to take such a worker back (it is not vigil's child any more).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "cshim.h"

static int fill_address(struct sockaddr_un *addr, const char *path) {
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof addr->sun_path) return -ENAMETOOLONG;
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, path, n);
    return 0;
}

int vigil_seqpacket_listen(const char *path, int backlog) {
    struct sockaddr_un addr;
    int rc = fill_address(&addr, path);
    if (rc < 0) return rc;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    unlink(path);  // the previous vigil's, dead: nobody accepts behind it
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || chmod(path, 0600) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int vigil_seqpacket_connect(const char *path) {
    struct sockaddr_un addr;
    int rc = fill_address(&addr, path);
    if (rc < 0) return rc;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int vigil_open_pipe_of(pid_t pid, int target_fd) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, target_fd);
    // Opening a pipe through /proc gives a new description of the same pipe: O_RDONLY
    // on the child's write end is a read end of its output, without the child's help.
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int vigil_is_pipe(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) return 0;
    return S_ISFIFO(st.st_mode) ? 1 : 0;
}
