#ifndef MODELKEEP_CPLATFORM_SHIM_H
#define MODELKEEP_CPLATFORM_SHIM_H

// syncfs(2) is a GNU extension, which Swift's Glibc module (built without _GNU_SOURCE) leaves
// out; glibc has had it since 2.14. One call makes every file written on the filesystem durable.
extern int syncfs(int fd);

static inline int modelkeep_syncfs(int fd) {
    return syncfs(fd);
}
#endif
