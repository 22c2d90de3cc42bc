/* The reader's kernel: stored FITS words to prepared float32 electrons, in one pass.
 *
 * Pixel (i, j) of the window is flat[start + i * row_step + j * col_step] of the raw image
 * flattened in C order (steps in elements, negative when rotated), stored with its bytes
 * swapped when `swap`. Its value is float32((float64(word) + offset) * gain), the offset
 * added only when non-zero (which keeps a stored -0.0 negative): exactly numpy's three
 * passes through a float64 buffer, as soxspipe prepares a raw frame. Floats are swapped
 * through their bits, so every bit pattern, NaN payloads included, comes out as numpy's
 * swap.
 * The loops follow memory: along the window's rows when they run along the raw rows (even
 * rotations), else in bands of window rows read down the raw rows.
 */
#include <string.h>

#include "native.h"

#define TRANSPOSE_BAND 512

static inline uint8_t swap_u8(uint8_t w) { return w; }
static inline int8_t swap_i8(int8_t w) { return w; }
static inline uint16_t swap_u16(uint16_t w) { return __builtin_bswap16(w); }
static inline uint32_t swap_u32(uint32_t w) { return __builtin_bswap32(w); }
static inline uint64_t swap_u64(uint64_t w) { return __builtin_bswap64(w); }
static inline int16_t swap_i16(int16_t w) { return (int16_t)__builtin_bswap16((uint16_t)w); }
static inline int32_t swap_i32(int32_t w) { return (int32_t)__builtin_bswap32((uint32_t)w); }
static inline int64_t swap_i64(int64_t w) { return (int64_t)__builtin_bswap64((uint64_t)w); }
static inline float swap_f32(float w) {
    uint32_t b;
    memcpy(&b, &w, 4);
    b = __builtin_bswap32(b);
    memcpy(&w, &b, 4);
    return w;
}
static inline double swap_f64(double w) {
    uint64_t b;
    memcpy(&b, &w, 8);
    b = __builtin_bswap64(b);
    memcpy(&w, &b, 8);
    return w;
}

#define ELECTRON(T, SWAP, word)                                                            \
    do {                                                                                   \
        T w_ = (word);                                                                     \
        if (swap) w_ = SWAP(w_);                                                           \
        double v_ = (double)w_;                                                            \
        if (offset != 0.0) v_ += offset;                                                   \
        value = (float)(v_ * gain);                                                        \
    } while (0)

#define PREPARE(NAME, T, SWAP)                                                             \
    MD_EXPORT MD_CLONES void NAME(const T *flat, int64_t start, int64_t row_step,          \
                                  int64_t col_step, int32_t swap, double offset,           \
                                  double gain, float *out, int64_t ny, int64_t nx) {       \
        float value;                                                                       \
        int64_t ac = col_step < 0 ? -col_step : col_step;                                  \
        int64_t ar = row_step < 0 ? -row_step : row_step;                                  \
        if (ac <= ar) {                                                                    \
            for (int64_t i = 0; i < ny; i++) {                                             \
                const T *row = flat + start + i * row_step;                                \
                float *o = out + i * nx;                                                   \
                if (col_step == 1) {                                                       \
                    for (int64_t j = 0; j < nx; j++) {                                     \
                        ELECTRON(T, SWAP, row[j]);                                         \
                        o[j] = value;                                                      \
                    }                                                                      \
                } else {                                                                   \
                    for (int64_t j = 0; j < nx; j++) {                                     \
                        ELECTRON(T, SWAP, row[j * col_step]);                              \
                        o[j] = value;                                                      \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        } else {                                                                           \
            for (int64_t i0 = 0; i0 < ny; i0 += TRANSPOSE_BAND) {                          \
                int64_t i1 = i0 + TRANSPOSE_BAND < ny ? i0 + TRANSPOSE_BAND : ny;          \
                for (int64_t j = 0; j < nx; j++) {                                         \
                    const T *col = flat + start + j * col_step;                            \
                    for (int64_t i = i0; i < i1; i++) {                                    \
                        ELECTRON(T, SWAP, col[i * row_step]);                              \
                        out[i * nx + j] = value;                                           \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }

PREPARE(prepare_u8, uint8_t, swap_u8)
PREPARE(prepare_i8, int8_t, swap_i8)
PREPARE(prepare_u16, uint16_t, swap_u16)
PREPARE(prepare_u32, uint32_t, swap_u32)
PREPARE(prepare_i16, int16_t, swap_i16)
PREPARE(prepare_i32, int32_t, swap_i32)
PREPARE(prepare_i64, int64_t, swap_i64)
PREPARE(prepare_u64, uint64_t, swap_u64)
PREPARE(prepare_f32, float, swap_f32)
PREPARE(prepare_f64, double, swap_f64)
