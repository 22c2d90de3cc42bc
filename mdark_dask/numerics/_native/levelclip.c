/* The whole-frame mean/std sigma clip of mdark_dask/numerics/levelclip.py, built on numpy
 * 2.1's pairwise sums (pairwise.h): its float64 (accurate) statistics and the masked mean
 * and std of its final bounds are summed in numpy's order, as mdark_dask/numerics/masked.py
 * sums them.
 *
 * soxspipe 0.17.4 numerics (bottleneck 1.4 under astropy 6.1.2) sum sequentially in
 * float32: those chains stay chains. Values not kept are staged as -0.0 (s + -0.0 is s bit
 * for bit, whatever s) so the selection vectorises and the sum is a bare chain of adds.
 *
 * The staging loops compute every value before selecting it, and select doubles (and the
 * -0.0 fill) through bit masks: with a conditional operation, or a select GCC 12 does not
 * if-convert, the loop keeps a branch and does not vectorise. The values are the same.
 *
 * Every function is reentrant: scratch lives on the stack (small) or is malloc'ed per call
 * (a buffer of 8192 doubles, the clip's byte per pixel); those return -1 when malloc fails.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"
#include "pairwise.h"

#define STAGE 2048 /* values staged at a time for the sequential float32 sums (L1 sized) */

/* `keep ? v : -0.0f` (keep 0 or 1) as a bit mask, for the reason of keep_or_zero
 * (pairwise.h): the neutral value of the sequential float32 sums (s + -0.0f is s, bit for
 * bit, whatever s). */
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
 * the step-by-step clip: the whole-frame mean/std clip with a "kept" byte per pixel */

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
        /* NaN sticks (once a bound is NaN nothing is kept, as with md_clip_bounds's bytes) */
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
