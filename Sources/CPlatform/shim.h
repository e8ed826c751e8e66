#ifndef MODELKEEP_CPLATFORM_SHIM_H
#define MODELKEEP_CPLATFORM_SHIM_H

// syncfs(2) is a GNU extension, which Swift's Glibc module (built without _GNU_SOURCE) leaves
// out; glibc has had it since 2.14. One call makes every file written on the filesystem durable.
extern int syncfs(int fd);

static inline int modelkeep_syncfs(int fd) {
    return syncfs(fd);
}

// Starts writing a file's dirty pages to the disk without waiting (sync_file_range(2) with
// SYNC_FILE_RANGE_WRITE, Linux only; also a GNU extension). An upload calls it on each chunk it
// stages, so the disk works while the rest streams in and the final syncfs finds little left.
#ifdef __linux__
#include <stdint.h>
extern int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags);
static inline int modelkeep_start_writeback(int fd) {
    return sync_file_range(fd, 0, 0, 2 /* SYNC_FILE_RANGE_WRITE */);
}
#else
static inline int modelkeep_start_writeback(int fd) { (void)fd; return 0; }
#endif

// epoll(7) for the HTTP server's worker pool. Swift cannot build `struct epoll_event` (packed on
// x86-64), so these wrappers take and give its 64-bit token only. A connection is armed for one
// readable event at a time (EPOLLONESHOT): the worker that receives it owns the connection until
// it arms it again, so two workers never serve one connection.
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
static inline int modelkeep_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}
static inline int modelkeep_epoll_arm(int epfd, int fd, uint64_t token, int first) {
    struct epoll_event event;
    event.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    event.data.u64 = token;
    return epoll_ctl(epfd, first ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &event);
}
// Level-triggered and never re-armed: once the descriptor is readable, every wait returns it.
static inline int modelkeep_epoll_watch(int epfd, int fd, uint64_t token) {
    struct epoll_event event;
    event.events = EPOLLIN;
    event.data.u64 = token;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}
static inline int modelkeep_epoll_wait_one(int epfd, int timeout_ms, uint64_t *token) {
    struct epoll_event event;
    int n = epoll_wait(epfd, &event, 1, timeout_ms);
    if (n == 1) *token = event.data.u64;
    return n;
}
static inline int modelkeep_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}
#endif
#endif
