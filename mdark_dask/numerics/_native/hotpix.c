/* Hot and noisy pixels of a master dark (mdark_dask/numerics/hotpix.py): order statistics
 * of float32 and float64 images by radix selection, the dark-current image and the map in
 * one pass.
 *
 * Every ranked value t (a finite value, or its float64 deviation |x - center| from a
 * median) is mapped to a signed 64-bit key in the same order: the bits of the float64
 * t + 0.0 (so -0.0 shares +0.0's key), negatives reflected. A first pass counts the keys
 * in 2^20 buckets of their top 20 bits; a second gathers the bucket(s) holding the two
 * middle ranks; the gathered values are narrowed on 16 more bits at a time until at most
 * 32 are left to sort. Keys are exact, so the values found are exactly the order
 * statistics a sort of the float64 values gives (returned + 0.0: a zero is +0.0), whatever
 * the data. Values are widened to float64 before anything else.
 *
 * Each pass takes the values a block at a time: a vectorised loop computes the ranked
 * values and their buckets, a scalar loop counts them or copies a bucket's values (after a
 * vector test for a match, rarely true). Reentrant: the 2^20-bucket histogram is the
 * caller's scratch, all zero on entry and left all zero (only the buckets a pass counted
 * in are cleared, so a clip's passes neither clear nor scan 8 MB each); gather buffers
 * are malloc'd and freed within the call.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"

#define BUCKETS ((int64_t)1 << 20)
#define SHIFT 44
#define SMALL 32 /* sort at most this many values */
#define HOT 1
#define NOISY 2

/* The order-preserving key of a finite float64 (or +-inf): its bits, negatives reflected. */
static inline int64_t key_of(double t) {
    double z = t + 0.0; /* -0.0 + 0.0 is +0.0: the zeros compare equal, so share a key */
    int64_t k;
    memcpy(&k, &z, sizeof k);
    return k ^ ((k >> 63) & INT64_C(0x7FFFFFFFFFFFFFFF));
}

static inline int64_t bucket_of_key(int64_t k) { return (k >> SHIFT) + BUCKETS / 2; }

/* The bucket holding the rank-th smallest value, and how many values lie below it. */
static int64_t find_bucket(const int64_t *hist, int64_t rank, int64_t *below) {
    int64_t b = 0, n = 0;
    while (n + hist[b] <= rank) {
        n += hist[b];
        b++;
    }
    *below = n;
    return b;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The rank-th and (rank + second)-th smallest of buf[:m] (keys sharing their top 20 bits),
 * narrowing on 16 more bits of the key at a time; buf is reused, hist[:65536] scratch. */
static void select_pair(double *buf, int64_t m, int64_t rank, int64_t second, int64_t *hist,
                        double *out) {
    static const int shifts[3] = {28, 12, 0};
    for (int s = 0; s < 3; s++) {
        if (m <= SMALL) break;
        int shift = shifts[s];
        memset(hist, 0, 65536 * sizeof *hist);
        for (int64_t j = 0; j < m; j++) hist[(key_of(buf[j]) >> shift) & 0xFFFF]++;
        int64_t below;
        int64_t b_lo = find_bucket(hist, rank, &below);
        if (rank + second >= below + hist[b_lo]) { /* straddles: last of b_lo, next's first */
            double largest = -INFINITY, smallest = INFINITY;
            for (int64_t j = 0; j < m; j++) {
                int64_t b = (key_of(buf[j]) >> shift) & 0xFFFF;
                if (b == b_lo) {
                    if (buf[j] > largest) largest = buf[j];
                } else if (b > b_lo) {
                    if (buf[j] < smallest) smallest = buf[j];
                }
            }
            out[0] = largest + 0.0;
            out[1] = smallest + 0.0;
            return;
        }
        int64_t w = 0;
        for (int64_t j = 0; j < m; j++)
            if (((key_of(buf[j]) >> shift) & 0xFFFF) == b_lo) buf[w++] = buf[j];
        m = w;
        rank -= below;
    }
    if (m > SMALL) { /* all 64 bits of the key alike: one value */
        out[0] = out[1] = buf[0] + 0.0;
        return;
    }
    qsort(buf, (size_t)m, sizeof *buf, cmp_double);
    out[0] = buf[rank] + 0.0;
    out[1] = buf[rank + second] + 0.0;
}

static double min_of(const double *buf, int64_t m) {
    double r = INFINITY;
    for (int64_t j = 0; j < m; j++)
        if (buf[j] < r) r = buf[j];
    return r;
}

static double max_of(const double *buf, int64_t m) {
    double r = -INFINITY;
    for (int64_t j = 0; j < m; j++)
        if (buf[j] > r) r = buf[j];
    return r;
}

/* The ranked value of x: x itself (center NaN) or its deviation |x - center|. */
#define RANKED(x) (dev ? fabs((x) - center) : (x))

/* Values are taken a block at a time: a first loop (vectorised) computes every value's
 * ranked value and bucket, DUMMY for a value that takes no part (not finite, above cap,
 * masked); a second, scalar loop counts or gathers. */
#define BLOCK 512
#define DUMMY BUCKETS

#define BLOCK_KEYS(STORE)                                                                          \
    int64_t len = size - i0 < BLOCK ? size - i0 : BLOCK;                                           \
    for (int64_t j = 0; j < len; j++) {                                                            \
        double x = (double)v[i0 + j];                                                              \
        int ok = (x <= cap) & (fabs(x) <= DBL_MAX) & (use_mask ? masked[i0 + j] == 0 : 1);         \
        double t = RANKED(x);                                                                      \
        int32_t b = (int32_t)bucket_of_key(key_of(t));                                             \
        STORE;                                                                                     \
        idx[j] = ok ? b : (int32_t)DUMMY;                                                          \
    }

#define SELECTION(SUFFIX, T)                                                                       \
    /* Count the ranked values into hist (zero on entry) by bucket; return how many, and           \
     * the lowest and highest bucket counted. */                                                   \
    static inline __attribute__((always_inline)) int64_t histogram_##SUFFIX(                       \
        const T *v, int64_t size, const uint8_t *masked, double cap, double center,                \
        int64_t *hist, int64_t *lowest, int64_t *highest, const int use_mask,                      \
        const int dev) {                                                                           \
        int32_t idx[BLOCK];                                                                        \
        int32_t lo = (int32_t)DUMMY, hi = -1;                                                      \
        for (int64_t i0 = 0; i0 < size; i0 += BLOCK) {                                             \
            BLOCK_KEYS((void)t)                                                                    \
            for (int64_t j = 0; j < len; j++) {                                                    \
                int32_t b = idx[j], c = b & (DUMMY - 1); /* DUMMY & (DUMMY - 1) is 0 */            \
                lo = b < lo ? b : lo;                                                              \
                hi = c > hi ? c : hi;                                                              \
            }                                                                                      \
            for (int64_t j = 0; j < len; j++) hist[idx[j]]++;                                      \
        }                                                                                          \
        int64_t n = size - hist[DUMMY];                                                            \
        hist[DUMMY] = 0;                                                                           \
        *lowest = lo;                                                                              \
        *highest = hi;                                                                             \
        return n;                                                                                  \
    }                                                                                              \
    MD_CLONES static int64_t histogram_any_##SUFFIX(const T *v, int64_t size,                      \
                                                     const uint8_t *masked, double cap,            \
                                                     double center, int64_t *hist,                 \
                                                     int64_t *lo, int64_t *hi) {                   \
        int dev = !isnan(center);                                                                  \
        if (masked)                                                                                \
            return dev ? histogram_##SUFFIX(v, size, masked, cap, center, hist, lo, hi, 1, 1)      \
                       : histogram_##SUFFIX(v, size, masked, cap, center, hist, lo, hi, 1, 0);     \
        return dev ? histogram_##SUFFIX(v, size, masked, cap, center, hist, lo, hi, 0, 1)          \
                   : histogram_##SUFFIX(v, size, masked, cap, center, hist, lo, hi, 0, 0);         \
    }                                                                                              \
    /* Copy the ranked values of buckets b_lo and b_hi into buf_lo and buf_hi (b_hi only           \
     * when it differs from b_lo). */                                                              \
    static inline __attribute__((always_inline)) void gather_##SUFFIX(                             \
        const T *v, int64_t size, const uint8_t *masked, double cap, double center,                \
        int32_t b_lo, int32_t b_hi, double *buf_lo, double *buf_hi, const int use_mask,            \
        const int dev) {                                                                           \
        double ts[BLOCK];                                                                          \
        int32_t idx[BLOCK];                                                                        \
        int64_t m_lo = 0, m_hi = 0;                                                                \
        for (int64_t i0 = 0; i0 < size; i0 += BLOCK) {                                             \
            BLOCK_KEYS(ts[j] = t)                                                                  \
            for (int64_t j0 = 0; j0 < len; j0 += 32) { /* a vector test, rarely a copy */          \
                int64_t j1 = len - j0 < 32 ? len : j0 + 32;                                        \
                int any = 0;                                                                       \
                for (int64_t j = j0; j < j1; j++) any |= (idx[j] == b_lo) | (idx[j] == b_hi);      \
                if (!any) continue;                                                                \
                for (int64_t j = j0; j < j1; j++) {                                                \
                    if (idx[j] == b_lo)                                                            \
                        buf_lo[m_lo++] = ts[j];                                                    \
                    else if (idx[j] == b_hi)                                                       \
                        buf_hi[m_hi++] = ts[j];                                                    \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    MD_CLONES static void gather_any_##SUFFIX(const T *v, int64_t size,                            \
                                              const uint8_t *masked, double cap,                   \
                                              double center, int32_t b_lo, int32_t b_hi,           \
                                              double *buf_lo, double *buf_hi) {                    \
        int dev = !isnan(center);                                                                  \
        if (masked) {                                                                              \
            if (dev)                                                                               \
                gather_##SUFFIX(v, size, masked, cap, center, b_lo, b_hi, buf_lo, buf_hi, 1,       \
                                1);                                                                \
            else                                                                                   \
                gather_##SUFFIX(v, size, masked, cap, center, b_lo, b_hi, buf_lo, buf_hi, 1,       \
                                0);                                                                \
        } else if (dev) {                                                                          \
            gather_##SUFFIX(v, size, masked, cap, center, b_lo, b_hi, buf_lo, buf_hi, 0, 1);       \
        } else {                                                                                   \
            gather_##SUFFIX(v, size, masked, cap, center, b_lo, b_hi, buf_lo, buf_hi, 0, 0);       \
        }                                                                                          \
    }                                                                                              \
    /* Count and the two middle order statistics of the ranked values: returns n, out[0]           \
     * and out[1] the (n-1)//2-th and n//2-th smallest (0-based); NaN when n is 0 or stop          \
     * (one pass only). masked is NULL or size bytes (non-zero masked). hist is scratch of         \
     * BUCKETS + 1 int64, all zero on entry and left all zero. Returns -1 when a buffer            \
     * cannot be allocated. */                                                                     \
    MD_EXPORT int64_t middle_pair_##SUFFIX(const T *v, int64_t size, const uint8_t *masked,        \
                                           double cap, double center, int64_t stop,                \
                                           int64_t *hist, double *out) {                           \
        out[0] = out[1] = NAN;                                                                     \
        int64_t lowest, highest;                                                                   \
        int64_t n = histogram_any_##SUFFIX(v, size, masked, cap, center, hist, &lowest,            \
                                           &highest);                                              \
        if (n == 0) return n;                                                                      \
        int64_t used = highest + 1 - lowest;                                                       \
        if (n == stop) {                                                                           \
            memset(hist + lowest, 0, (size_t)used * sizeof *hist);                                 \
            return n;                                                                              \
        }                                                                                          \
        int64_t rank = (n - 1) / 2; /* n > 0: floor division */                                    \
        int64_t second = n / 2 - rank;                                                             \
        int64_t below, below_hi;                                                                   \
        int64_t b_lo = lowest + find_bucket(hist + lowest, rank, &below);                          \
        int64_t b_hi = lowest + find_bucket(hist + lowest, rank + second, &below_hi);              \
        int64_t m_lo = hist[b_lo], m_hi = b_hi == b_lo ? 0 : hist[b_hi];                           \
        memset(hist + lowest, 0, (size_t)used * sizeof *hist);                                     \
        double *buf = malloc((size_t)(m_lo + m_hi) * sizeof *buf);                                 \
        if (!buf) return -1;                                                                       \
        gather_any_##SUFFIX(v, size, masked, cap, center, (int32_t)b_lo, (int32_t)b_hi, buf,       \
                            buf + m_lo);                                                           \
        if (b_hi == b_lo) {                                                                        \
            select_pair(buf, m_lo, rank - below, second, hist, out);                               \
            memset(hist, 0, 65536 * sizeof *hist);                                                 \
        } else { /* the two ranks straddle buckets: the last of one, the first of the next */      \
            out[0] = max_of(buf, m_lo) + 0.0;                                                      \
            out[1] = min_of(buf + m_lo, m_hi) + 0.0;                                               \
        }                                                                                          \
        free(buf);                                                                                 \
        return n;                                                                                  \
    }

SELECTION(f32, float)
SELECTION(f64, double)

/* out = float32(float64(v) - level), without a float64 image in between. */
#define SUBTRACT(SUFFIX, T)                                                                        \
    MD_EXPORT MD_CLONES void subtract_##SUFFIX(const T *restrict v, int64_t size,                  \
                                               double level, float *restrict out) {                \
        for (int64_t i = 0; i < size; i++) out[i] = (float)((double)v[i] - level);                 \
    }

SUBTRACT(f32, float)
SUBTRACT(f64, double)

/* The map in one pass: HOT where the dark current float32(combined - median) is above
 * hot_above; NOISY where noise_peel > peel_above, or, where noise_peel is not finite,
 * noise > noise_above (float64 comparisons; NaN is never above). */
#define FLAGS(SUFFIX, T)                                                                           \
    MD_EXPORT MD_CLONES void flags_##SUFFIX(                                                       \
        const T *restrict combined, double median, const T *restrict noise,                        \
        const T *restrict noise_peel, double hot_above, double noise_above,                        \
        double peel_above, uint8_t *restrict bpm, int64_t size) {                                  \
        for (int64_t i = 0; i < size; i++) {                                                       \
            float dark = (float)((double)combined[i] - median);                                    \
            int hot = (double)dark > hot_above;                                                    \
            double p = (double)noise_peel[i], q = (double)noise[i];                                \
            int defined = fabs(p) <= DBL_MAX;                                                      \
            int noisy = (defined & (p > peel_above)) | (!defined & (q > noise_above));             \
            bpm[i] = (uint8_t)(hot * HOT | noisy * NOISY);                                         \
        }                                                                                          \
    }

FLAGS(f32, float)
FLAGS(f64, double)
