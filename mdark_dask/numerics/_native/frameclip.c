/* numpy 2.1's pairwise sums replayed (mdark_dask/npsum.py) and the whole-frame mean/std
 * sigma clip built on them (mdark_dask/frameclip.py), in one library because the clip sums
 * its float64 (accurate) statistics and its masked mean and std in numpy's order.
 *
 * numpy 2.1's order (`pairwise_sum` in loops_utils.h.src): a reduction works through
 * 8192-value buffers added in order to +0.0; each buffer is summed pairwise, halves rounded
 * down to a multiple of 8, leaves of at most 128 values summed in 8 accumulators (fewer
 * than 8 values: in order). The leaves' 8 accumulators are independent lanes, so the
 * compiler may put them in one vector register without changing a bit; nothing else is
 * reassociated (no fast-math, no contraction: setup.py).
 *
 * soxspipe 0.17.4 numerics (bottleneck 1.4 under astropy 6.1.2) sum sequentially in
 * float32: those chains stay chains. Values not kept are staged as -0.0 (s + -0.0 is s bit
 * for bit, whatever s) so the selection vectorises and the sum is a bare chain of adds.
 *
 * The staging loops compute every value before selecting it, and select doubles (and the
 * -0.0 fill) through bit masks: with a conditional operation, or a select GCC 12 does not
 * if-convert, the loop keeps a branch and does not vectorise. The values are the same.
 * When a sum meets NaNs of different signs or payloads, which one comes out is the
 * compiler's choice of operand order (in numpy and numba as here): only that can differ.
 *
 * Every function is reentrant: scratch lives on the stack (small) or is malloc'ed per call
 * (a buffer of 8192 doubles, the clip's byte per pixel); those return -1 when malloc fails.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"

MD_MODULE(frameclip)

/* Forced into every caller, so that the callers' clones (MD_CLONES) compile it for their
 * target: a function left out of line would run the baseline build only. */
#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

#define BUFFER 8192 /* numpy's ufunc buffer: a reduction's inner-loop chunk */
#define STAGE 2048  /* values staged at a time for the sequential float32 sums (L1 sized) */

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

/* `keep ? v : -0.0f` (keep 0 or 1) as a bit mask, for the same reason: the neutral value
 * of the sequential float32 sums (s + -0.0f is s, bit for bit, whatever s). */
INLINE float keep_or_negzero(float v, int keep) {
    uint32_t b, mask = (uint32_t)0 - (uint32_t)keep;
    memcpy(&b, &v, 4);
    b = (b & mask) | (UINT32_C(0x80000000) & ~mask);
    memcpy(&v, &b, 4);
    return v;
}

/* v rounded to float32, behind an empty asm that pins the float in a register. GCC 12.2's
 * vectoriser drops the rounding of (double)(float)x when it pairs two such values (lo and
 * hi stored side by side: out[0] = (double)(float)a; out[1] = (double)(float)b; compiles
 * to out[0] = a; out[1] = b at -O2 and above), so every float32 rounding of a double
 * that is used as a double again goes through here. */
#if defined(__GNUC__) && defined(__x86_64__)
#define PIN_FLOAT(f) __asm__("" : "+x"(f))
#elif defined(__GNUC__) && defined(__aarch64__)
#define PIN_FLOAT(f) __asm__("" : "+w"(f))
#elif defined(__GNUC__)
#define PIN_FLOAT(f) __asm__("" : "+m"(f))
#else
#define PIN_FLOAT(f) ((void)0)
#endif

INLINE float round_f32(double v) {
    float f = (float)v;
    PIN_FLOAT(f);
    return f;
}

/* ---------------------------------------------------------------------------------------
 * npsum: numpy.sum and np.ma.mean / np.ma.std in numpy 2.1's order */

/* numpy 2.1's pairwise sum of a[0:n], 1 <= n <= BUFFER (the caller checks n). */
MD_EXPORT MD_CLONES float md_pairwise_f32(const float *a, int64_t n) {
    return pairwise_f32(a, n);
}

MD_EXPORT MD_CLONES double md_pairwise_f64(const double *a, int64_t n) {
    return pairwise_f64(a, n);
}

/* numpy.sum of a[0:size]: each buffer pairwise, added in order to +0.0. */
MD_EXPORT MD_CLONES float md_sum_f32(const float *a, int64_t size) {
    float acc = 0.0f;
    for (int64_t start = 0; start < size; start += BUFFER)
        acc += pairwise_f32(a + start, min64(BUFFER, size - start));
    return acc;
}

MD_EXPORT MD_CLONES double md_sum_f64(const double *a, int64_t size) {
    double acc = 0.0;
    for (int64_t start = 0; start < size; start += BUFFER)
        acc += pairwise_f64(a + start, min64(BUFFER, size - start));
    return acc;
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

/* np.ma.mean and np.ma.std (ddof 0) of float32 a[0:size] where m is 0 into out[0:2]
 * (selected_mean_std; m must not be NULL). Returns -1 when out of memory, else 0. */
MD_EXPORT MD_CLONES int32_t md_masked_mean_std(const float *a, const uint8_t *m, int64_t size,
                                               double *out) {
    double *buf64 = malloc(BUFFER * sizeof(double));
    if (buf64 == NULL) return -1;
    selected_mean_std(a, m, 0.0f, 0.0f, size, buf64, out);
    free(buf64);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * frameclip: the whole-frame mean/std clip with a "kept" byte per pixel (the reference) */

/* Final (lo, hi) of an iterative mean/std clip of x[0:size] into out[0:2]: astropy
 * sigma_clip(axis=None) with bottleneck's float32 sums (soxspipe) or numpy's float64
 * pairwise sums (accurate). Returns -1 when out of memory, else 0. */
MD_EXPORT MD_CLONES int32_t md_clip_bounds(const float *x, int64_t size, double sigma,
                                           int64_t maxiters, int32_t soxspipe, double *out) {
    uint8_t *keep = malloc(size > 0 ? (size_t)size : 1);
    double *buf64 = malloc(BUFFER * sizeof(double));
    if (keep == NULL || buf64 == NULL) {
        free(keep);
        free(buf64);
        return -1;
    }
    for (int64_t i = 0; i < size; i++) keep[i] = isfinite(x[i]) ? 1 : 0;
    double lo = NAN, hi = NAN;
    int64_t iteration = 0, changed = 1;
    while (changed != 0 && iteration < maxiters) {
        iteration++;
        if (soxspipe) {
            float s32 = 0.0f;
            int64_t n = 0;
            for (int64_t i = 0; i < size; i++) { /* adding -0.0 for the others */
                s32 += keep_or_negzero(x[i], keep[i]);
                n += keep[i];
            }
            float mean32 = s32 / (float)n;
            float q32 = 0.0f;
            for (int64_t i = 0; i < size; i++) {
                float d = x[i] - mean32;
                q32 += keep_or_negzero(d * d, keep[i]);
            }
            float std32 = (float)sqrt((double)(q32 / (float)n));
            double mean = (double)mean32, std = (double)std32;
            lo = (double)round_f32(mean - std * sigma);
            hi = (double)round_f32(mean + std * sigma);
        } else {
            double s64 = 0.0;
            int64_t n = 0;
            for (int64_t start = 0; start < size; start += BUFFER) {
                int64_t m = min64(BUFFER, size - start);
                const float *xs = x + start;
                const uint8_t *ks = keep + start;
                int64_t c = 0;
                for (int64_t j = 0; j < m; j++) {
                    double v = (double)xs[j];
                    buf64[j] = keep_or_zero(v, ks[j] != 0);
                    c += ks[j] ? 1 : 0;
                }
                n += c;
                s64 += pairwise_f64(buf64, m);
            }
            double mean = s64 / (double)n;
            double q64 = 0.0;
            for (int64_t start = 0; start < size; start += BUFFER) {
                int64_t m = min64(BUFFER, size - start);
                const float *xs = x + start;
                const uint8_t *ks = keep + start;
                for (int64_t j = 0; j < m; j++) {
                    double d64 = (double)xs[j] - mean, dd = d64 * d64;
                    buf64[j] = keep_or_zero(dd, ks[j] != 0);
                }
                q64 += pairwise_f64(buf64, m);
            }
            double std = sqrt(q64 / (double)n);
            lo = mean - std * sigma;
            hi = mean + std * sigma;
        }
        changed = 0;
        for (int64_t i = 0; i < size; i++) { /* clear the byte of the kept values outside */
            double v = (double)x[i];
            uint8_t inside = (v >= lo) & (v <= hi);
            changed += keep[i] & (inside ^ 1);
            keep[i] &= inside;
        }
    }
    free(keep);
    free(buf64);
    out[0] = lo;
    out[1] = hi;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * the level clip of one frame, fused with its masked mean and std: no per-pixel state */

INLINE float next_up(float v) { /* nextafterf(v, +inf) for v not NaN, not +inf */
    uint32_t b;
    if (v == 0.0f) return FLT_TRUE_MIN;
    memcpy(&b, &v, 4);
    b = v > 0.0f ? b + 1 : b - 1;
    memcpy(&v, &b, 4);
    return v;
}

INLINE float next_down(float v) { /* nextafterf(v, -inf) for v not NaN, not -inf */
    uint32_t b;
    if (v == 0.0f) return -FLT_TRUE_MIN;
    memcpy(&b, &v, 4);
    b = v > 0.0f ? b - 1 : b + 1;
    memcpy(&v, &b, 4);
    return v;
}

/* float32 (lo32, hi32) such that, for every float32 v, lo32 <= v <= hi32 exactly when
 * lo <= (double)v <= hi (lo rounded up, hi down; NaN stays NaN). */
INLINE void float32_bounds(double lo, double hi, float *lo32, float *hi32) {
    float l = round_f32(lo), h = round_f32(hi);
    if ((double)l < lo) l = next_up(l);
    if ((double)h > hi) h = next_down(h);
    *lo32 = l;
    *hi32 = h;
}

MD_EXPORT void md_float32_bounds(double lo, double hi, float *out) {
    float32_bounds(lo, hi, &out[0], &out[1]);
}

/* Kept: finite and inside [keep_lo, keep_hi] (`&`, not `&&`: no branch, so the loops
 * vectorise; the comparisons have no side effects). */
#define KEPT(v) ((fabsf(v) <= FLT_MAX) & ((v) >= keep_lo) & ((v) <= keep_hi))
/* Inside [lo32, hi32] (infinite values too when a bound is infinite). */
#define INSIDE(v) (((v) >= lo32) & ((v) <= hi32))

/* xs[0:m] into out, the values not kept replaced by `fill`; the number kept. Branch-free,
 * it vectorises. */
INLINE int64_t stage_kept_f32(const float *xs, int64_t m, float keep_lo, float keep_hi,
                                     float *out, float fill) {
    int64_t c = 0;
    for (int64_t j = 0; j < m; j++) {
        float v = xs[j];
        int kept = KEPT(v);
        out[j] = kept ? v : fill;
        c += kept ? 1 : 0;
    }
    return c;
}

INLINE int64_t stage_kept_f64(const float *xs, int64_t m, float keep_lo, float keep_hi,
                                     double *out) {
    int64_t c = 0;
    for (int64_t j = 0; j < m; j++) {
        float v = xs[j];
        int kept = KEPT(v);
        out[j] = keep_or_zero((double)v, kept);
        c += kept ? 1 : 0;
    }
    return c;
}

/* Sum (into *sum) and count of the kept values: sequential in float32 (soxspipe; staged
 * with -0.0 for the values not kept), else numpy's float64 sum of the values with 0 for
 * the values not kept. buf64: BUFFER doubles (accurate mode only). */
INLINE int64_t kept_sum(const float *x, int64_t size, float keep_lo, float keep_hi,
                               int32_t soxspipe, double *buf64, double *sum) {
    int64_t n = 0;
    if (!soxspipe) {
        double s64 = 0.0;
        for (int64_t start = 0; start < size; start += BUFFER) {
            int64_t m = min64(BUFFER, size - start);
            n += stage_kept_f64(x + start, m, keep_lo, keep_hi, buf64);
            s64 += pairwise_f64(buf64, m);
        }
        *sum = s64;
        return n;
    }
    float sel[STAGE];
    float s32 = 0.0f;
    for (int64_t start = 0; start < size; start += STAGE) {
        int64_t m = min64(STAGE, size - start);
        n += stage_kept_f32(x + start, m, keep_lo, keep_hi, sel, -0.0f);
        for (int64_t j = 0; j < m; j++) s32 += sel[j];
    }
    *sum = (double)s32;
    return n;
}

/* Sum of (x - mean)**2 over the kept values: sequential in float32 with the float32 mean
 * (soxspipe), else numpy's float64 sum; staged as in kept_sum. */
INLINE double kept_squares(const float *x, int64_t size, float keep_lo, float keep_hi,
                                  double mean, int32_t soxspipe, double *buf64) {
    if (!soxspipe) {
        double q64 = 0.0;
        for (int64_t start = 0; start < size; start += BUFFER) {
            int64_t m = min64(BUFFER, size - start);
            const float *xs = x + start;
            for (int64_t j = 0; j < m; j++) {
                float v = xs[j];
                int kept = KEPT(v);
                double d64 = (double)v - mean, dd = d64 * d64;
                buf64[j] = keep_or_zero(dd, kept);
            }
            q64 += pairwise_f64(buf64, m);
        }
        return q64;
    }
    float sel[STAGE];
    float q32 = 0.0f;
    float mean32 = (float)mean;
    for (int64_t start = 0; start < size; start += STAGE) {
        int64_t m = min64(STAGE, size - start);
        const float *xs = x + start;
        for (int64_t j = 0; j < m; j++) {
            float v = xs[j];
            int kept = KEPT(v);
            float d = v - mean32;
            sel[j] = keep_or_negzero(d * d, kept);
        }
        for (int64_t j = 0; j < m; j++) q32 += sel[j];
    }
    return (double)q32;
}

/* The kept sum and count (the count returned, -1 when out of memory). */
MD_EXPORT MD_CLONES int64_t md_kept_sum(const float *x, int64_t size, float keep_lo,
                                        float keep_hi, int32_t soxspipe, double *sum) {
    double *buf64 = soxspipe ? NULL : malloc(BUFFER * sizeof(double));
    if (!soxspipe && buf64 == NULL) return -1;
    int64_t n = kept_sum(x, size, keep_lo, keep_hi, soxspipe, buf64, sum);
    free(buf64);
    return n;
}

/* The kept squares into *out; -1 when out of memory, else 0. */
MD_EXPORT MD_CLONES int32_t md_kept_squares(const float *x, int64_t size, float keep_lo,
                                            float keep_hi, double mean, int32_t soxspipe,
                                            double *out) {
    double *buf64 = soxspipe ? NULL : malloc(BUFFER * sizeof(double));
    if (!soxspipe && buf64 == NULL) return -1;
    *out = kept_squares(x, size, keep_lo, keep_hi, mean, soxspipe, buf64);
    free(buf64);
    return 0;
}

/* The final (lo, hi) of md_clip_bounds (the same bits) without its per-pixel state: the
 * values still kept are those finite and inside every bound so far, and the pass applying
 * an iteration's bounds is the next iteration's sum (the drop in the count is what it
 * removed). buf64: BUFFER doubles. */
INLINE void level_bounds(const float *x, int64_t size, double sigma, int64_t maxiters,
                                int32_t soxspipe, double *buf64, double *out) {
    float keep_lo, keep_hi;
    float32_bounds(-INFINITY, INFINITY, &keep_lo, &keep_hi);
    double s;
    int64_t n = kept_sum(x, size, keep_lo, keep_hi, soxspipe, buf64, &s);
    double lo = NAN, hi = NAN;
    int64_t iteration = 0, changed = 1;
    while (changed != 0 && iteration < maxiters) {
        iteration++;
        if (soxspipe) {
            float mean32 = (float)s / (float)n;
            double mean = (double)mean32;
            float q32 = (float)kept_squares(x, size, keep_lo, keep_hi, mean, 1, buf64);
            float std32 = (float)sqrt((double)(q32 / (float)n));
            double std = (double)std32;
            lo = (double)round_f32(mean - std * sigma);
            hi = (double)round_f32(mean + std * sigma);
        } else {
            double mean = s / (double)n;
            double std =
                sqrt(kept_squares(x, size, keep_lo, keep_hi, mean, 0, buf64) / (double)n);
            lo = mean - std * sigma;
            hi = mean + std * sigma;
        }
        if (iteration == maxiters) break; /* what it would clip changes nothing returned */
        /* NaN sticks (once a bound is NaN nothing is kept, as with the reference's bytes) */
        float lo32, hi32;
        float32_bounds(lo, hi, &lo32, &hi32);
        keep_lo = (isnan(lo32) || lo32 > keep_lo) ? lo32 : keep_lo;
        keep_hi = (isnan(hi32) || hi32 < keep_hi) ? hi32 : keep_hi;
        int64_t before = n;
        n = kept_sum(x, size, keep_lo, keep_hi, soxspipe, buf64, &s);
        changed = before - n;
    }
    out[0] = lo;
    out[1] = hi;
}

MD_EXPORT MD_CLONES int32_t md_level_bounds(const float *x, int64_t size, double sigma,
                                            int64_t maxiters, int32_t soxspipe, double *out) {
    double *buf64 = malloc(BUFFER * sizeof(double));
    if (buf64 == NULL) return -1;
    level_bounds(x, size, sigma, maxiters, soxspipe, buf64, out);
    free(buf64);
    return 0;
}

/* (lo, hi, mean, std) of the level clip into out[0:4]: level_bounds, then np.ma.mean and
 * np.ma.std of the values inside the final bounds in numpy 2.1's order (the bits of
 * md_masked_mean_std with the mask of those bounds, without the mask). Inside is not
 * kept: with infinite bounds (a float32 std that overflowed) an infinite value is inside,
 * as in numpy's masked statistics. NaN mean and std when nothing is inside. */
MD_EXPORT MD_CLONES int32_t md_level_stats(const float *x, int64_t size, double sigma,
                                           int64_t maxiters, int32_t soxspipe, double *out) {
    double *buf64 = malloc(BUFFER * sizeof(double));
    if (buf64 == NULL) return -1;
    level_bounds(x, size, sigma, maxiters, soxspipe, buf64, out);
    float lo32, hi32;
    float32_bounds(out[0], out[1], &lo32, &hi32);
    selected_mean_std(x, NULL, lo32, hi32, size, buf64, out + 2);
    free(buf64);
    return 0;
}
