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
#endif
