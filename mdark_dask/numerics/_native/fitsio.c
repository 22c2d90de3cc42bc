/* FITS data units: the DATASUM of native words as FITS stores them (big-endian).
 *
 * md_datasum returns the FITS data checksum of `nbytes` bytes of `itemsize`-byte native
 * words at `src` stored with each word's bytes reversed (one-byte words as they are): the
 * ones' complement sum of those bytes' big-endian 32-bit words, the last partial word
 * completed with zero bytes (as the zero padding of the data unit does). That is
 * astropy's `_compute_checksum` of the bytes it would write, in one pass: the swapped
 * bytes only pass through a cache-sized chunk on the stack, where astropy makes a
 * byte-swapped copy of the image and sums it. Pure byte moves: every bit pattern (NaN
 * payloads, -0.0) counts as it is.
 */
#include <string.h>

#include "native.h"

MD_MODULE(fitsio)

#define CHUNK (1 << 16) /* bytes swapped, then summed while in cache */

static MD_CLONES void swap_bytes(const uint8_t *src, uint8_t *dst, int64_t nbytes, int64_t itemsize) {
    int64_t n = nbytes / itemsize;
    if (itemsize == 2) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t w;
            memcpy(&w, src + 2 * i, 2);
            w = __builtin_bswap16(w);
            memcpy(dst + 2 * i, &w, 2);
        }
    } else if (itemsize == 4) {
        for (int64_t i = 0; i < n; i++) {
            uint32_t w;
            memcpy(&w, src + 4 * i, 4);
            w = __builtin_bswap32(w);
            memcpy(dst + 4 * i, &w, 4);
        }
    } else if (itemsize == 8) {
        for (int64_t i = 0; i < n; i++) {
            uint64_t w;
            memcpy(&w, src + 8 * i, 8);
            w = __builtin_bswap64(w);
            memcpy(dst + 8 * i, &w, 8);
        }
    } else {
        memcpy(dst, src, (size_t)nbytes);
    }
}

static MD_CLONES uint64_t sum_words(const uint8_t *p, int64_t nwords) {
    uint64_t s = 0;
    for (int64_t i = 0; i < nwords; i++) {
        uint32_t w;
        memcpy(&w, p + 4 * i, 4);
        s += __builtin_bswap32(w);
    }
    return s;
}

/* Returns the checksum (a uint32 in an int64), or -1 for an item size other than 1, 2, 4
 * or 8, or a byte count that is not a whole number of items. */
MD_EXPORT int64_t md_datasum(const uint8_t *src, int64_t nbytes, int64_t itemsize) {
    if (!(itemsize == 1 || itemsize == 2 || itemsize == 4 || itemsize == 8) || nbytes < 0 ||
        nbytes % itemsize != 0)
        return -1;
    uint8_t chunk[CHUNK];
    uint64_t s = 0;
    int64_t done = 0;
    while (nbytes - done >= 4) {
        int64_t n = nbytes - done < CHUNK ? (nbytes - done) / 8 * 8 : CHUNK;
        if (n == 0)
            n = 4; /* 4 bytes of 1-, 2- or 4-byte words left */
        swap_bytes(src + done, chunk, n, itemsize);
        s += sum_words(chunk, n / 4);
        /* 2**16 bytes add at most 2**14 * (2**32 - 1): fold before 64 bits can overflow */
        while (s >> 32)
            s = (s & 0xFFFFFFFFu) + (s >> 32);
        done += n;
    }
    if (done < nbytes) { /* 1 to 3 bytes of 1- or 2-byte words, completed with zeros */
        int64_t extra = nbytes - done;
        uint8_t last[4] = {0, 0, 0, 0};
        swap_bytes(src + done, last, extra, itemsize);
        s += sum_words(last, 1);
    }
    while (s >> 32)
        s = (s & 0xFFFFFFFFu) + (s >> 32);
    return (int64_t)s;
}
