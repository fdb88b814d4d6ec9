#ifndef SWAPGATE_CZLIB_SHIM_H
#define SWAPGATE_CZLIB_SHIM_H
#include <zlib.h>
/* inflateInit2 is a macro over inflateInit2_ (with the version and the stream size): a plain
 * function for Swift. windowBits -15: raw DEFLATE (RFC 1951), no zlib or gzip header. */
static inline int czlib_inflate_init_raw(z_stream *stream) {
    return inflateInit2(stream, -15);
}
#endif
