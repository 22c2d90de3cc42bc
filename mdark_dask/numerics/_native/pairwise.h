/* numpy 2.1's summation order, inlined into the libraries that replay it: masked.c
 * (numpy.sum, np.ma.mean and np.ma.std, mdark_dask/numerics/masked.py) and levelclip.c
 * (the level clip, whose float64 statistics and final masked mean and std are summed in the
 * same order, mdark_dask/numerics/levelclip.py). Static inline only: each library compiles
 * its own copy into its own clones (MD_CLONES), so the two give the same bits.
 *
 * numpy 2.1's order (`pairwise_sum` in loops_utils.h.src): a reduction works through
 * 8192-value buffers added in order to +0.0; each buffer is summed pairwise, halves rounded
 * down to a multiple of 8, leaves of at most 128 values summed in 8 accumulators (fewer
 * than 8 values: in order). The leaves' 8 accumulators are independent lanes, so the
 * compiler may put them in one vector register without changing a bit; nothing else is
 * reassociated (no fast-math, no contraction: setup.py).
 *
 * When a sum meets NaNs of different signs or payloads, which one comes out is the
 * compiler's choice of operand order (in numpy as here): only that can differ.
 */
#ifndef MDARK_PAIRWISE_H
#define MDARK_PAIRWISE_H

#include <math.h>
#include <string.h>

#include "native.h"

/* Forced into every caller, so that the callers' clones (MD_CLONES) compile it for their
 * target: a function left out of line would run the baseline build only. */
#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

#define BUFFER 8192 /* numpy's ufunc buffer: a reduction's inner-loop chunk */

/* ---------------------------------------------------------------------------------------
 * numpy 2.1's pairwise sum of one buffer, per dtype
 *
 * leaf: a[0:n], 1 <= n <= 128 (numpy starts from -0.0, and -0.0 + a[0] is a[0]).
 * buffer: a[0:n], 1 <= n <= BUFFER: numpy's recursion evaluated with an explicit stack,
 * the leaves in order (a whole buffer is a balanced tree over 64 leaves). Both inline into
 * their callers, so they are compiled for each of the callers' clones. */
#define PAIRWISE(S, T)                                                                     \
    INLINE T leaf_##S(const T *a, int64_t n) {                                             \
        if (n < 8) {                                                                       \
            T res = a[0];                                                                  \
            for (int64_t i = 1; i < n; i++) res += a[i];                                   \
            return res;                                                                    \
        }                                                                                  \
        T r[8];                                                                            \
        for (int k = 0; k < 8; k++) r[k] = a[k];                                           \
        int64_t stop = n - n % 8;                                                          \
        for (int64_t i = 8; i < stop; i += 8)                                              \
            for (int k = 0; k < 8; k++) r[k] += a[i + k];                                  \
        T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));         \
        for (int64_t i = stop; i < n; i++) res += a[i];                                    \
        return res;                                                                        \
    }                                                                                      \
                                                                                           \
    INLINE T pairwise_##S(const T *a, int64_t n) {                                         \
        T values[64];                                                                      \
        if (n == BUFFER) {                                                                 \
            for (int k = 0; k < 64; k++) values[k] = leaf_##S(a + 128 * k, 128);           \
            for (int width = 32; width >= 1; width /= 2)                                   \
                for (int k = 0; k < width; k++)                                            \
                    values[k] = values[2 * k] + values[2 * k + 1];                         \
            return values[0];                                                              \
        }                                                                                  \
        /* task stack: (lo, m); m == -1 adds the two partial sums on top of `values` */    \
        int64_t task_lo[64], task_n[64];                                                   \
        int top = 0, depth = 0;                                                            \
        task_lo[0] = 0;                                                                    \
        task_n[0] = n;                                                                     \
        while (top >= 0) {                                                                 \
            int64_t lo = task_lo[top], m = task_n[top];                                    \
            top--;                                                                         \
            if (m == -1) {                                                                 \
                depth--;                                                                   \
                values[depth - 1] = values[depth - 1] + values[depth];                     \
            } else if (m <= 128) {                                                         \
                values[depth++] = leaf_##S(a + lo, m);                                     \
            } else {                                                                       \
                int64_t half = m / 2;                                                      \
                half -= half % 8;                                                          \
                /* popped in order: left half, right half, then their sum */               \
                task_lo[top + 1] = 0;                                                      \
                task_n[top + 1] = -1;                                                      \
                task_lo[top + 2] = lo + half;                                              \
                task_n[top + 2] = m - half;                                                \
                task_lo[top + 3] = lo;                                                     \
                task_n[top + 3] = half;                                                    \
                top += 3;                                                                  \
            }                                                                              \
        }                                                                                  \
        return values[0];                                                                  \
    }

PAIRWISE(f32, float)
PAIRWISE(f64, double)

INLINE int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* `keep ? v : +0.0` (keep 0 or 1) as a bit mask: GCC 12 does not if-convert a select of
 * doubles on a condition computed from floats (nor one guarded by a comparison that might
 * trap) and the loop would not vectorise; the mask gives the same value, branch-free. */
INLINE double keep_or_zero(double v, int keep) {
    uint64_t b;
    memcpy(&b, &v, 8);
    b &= (uint64_t)0 - (uint64_t)keep;
    memcpy(&v, &b, 8);
    return v;
}

/* np.ma.mean and np.ma.std (ddof 0) of the float32 x[0:size] taking part: where m is 0
 * when there is a mask m, else where lo32 <= x <= hi32 (infinite values too when a bound
 * is infinite). mean_std[0] the mean, float64(float32 pairwise sum of the filled array) /
 * count, mean_std[1] the std, the sqrt of the float64 pairwise sum of the squared float64
 * anomalies (0 where not taking part) / count; NaN for both when nothing takes part.
 * buf64: BUFFER doubles of scratch. Inlined into its two callers, where the selection is
 * fixed, so each gets its own branch-free loops. */
INLINE void selected_mean_std(const float *x, const uint8_t *m, float lo32, float hi32,
                              int64_t size, double *buf64, double *mean_std) {
    float *buf32 = (float *)buf64;
    float total = 0.0f;
    int64_t count = 0;
    for (int64_t start = 0; start < size; start += BUFFER) {
        int64_t n = min64(BUFFER, size - start);
        const float *xs = x + start;
        int64_t c = 0;
        for (int64_t j = 0; j < n; j++) {
            float v = xs[j];
            int in = m != NULL ? m[start + j] == 0 : (v >= lo32) & (v <= hi32);
            buf32[j] = in ? v : 0.0f;
            c += in ? 1 : 0;
        }
        count += c;
        total += pairwise_f32(buf32, n);
    }
    if (count == 0) {
        mean_std[0] = NAN;
        mean_std[1] = NAN;
        return;
    }
    double mean = (double)total / (double)count;
    double acc = 0.0;
    for (int64_t start = 0; start < size; start += BUFFER) {
        int64_t n = min64(BUFFER, size - start);
        const float *xs = x + start;
        for (int64_t j = 0; j < n; j++) {
            float v = xs[j];
            int in = m != NULL ? m[start + j] == 0 : (v >= lo32) & (v <= hi32);
            double d = (double)v - mean, dd = d * d;
            buf64[j] = keep_or_zero(dd, in);
        }
        acc += pairwise_f64(buf64, n);
    }
    mean_std[0] = mean;
    mean_std[1] = sqrt(acc / (double)count);
}

#endif
