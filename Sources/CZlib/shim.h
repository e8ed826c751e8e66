#ifndef MODELKEEP_ZLIB_SHIM_H
#define MODELKEEP_ZLIB_SHIM_H

#include <zlib.h>

/// deflateInit2 is a macro Swift cannot call: a gzip stream (window bits 15 + 16) at `level`.
static inline int modelkeep_deflate_init_gzip(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}

/// inflateInit2 for gzip input (tests read back what the server compressed).
static inline int modelkeep_inflate_init_gzip(z_stream *stream) {
    return inflateInit2(stream, 15 + 16);
}

#endif
