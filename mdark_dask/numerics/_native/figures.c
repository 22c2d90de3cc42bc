/* The QC plots' counting kernels (mdark_dask/report/binning.py): the finite range of an
 * image, histogram counts over even or uneven edges, and counts of the float32 bit
 * patterns by 1/256 octave (for a quantile bound).
 *
 * Each is one pass over the image, in float64 arithmetic on each value (and numpy's
 * searchsorted rule for uneven edges). The callers zero the outputs they pass.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"

/* The smallest and largest finite value as float64 into range[0], range[1]; NaN, NaN when
 * there is none. A value replaces the running minimum only when strictly smaller, so of
 * equal zeros the first one's sign is kept. */
#define FINITE_RANGE(NAME, T)                                                              \
    MD_EXPORT void NAME(const T *v, int64_t n, double *range) {                            \
        double lo = INFINITY, hi = -INFINITY;                                              \
        for (int64_t i = 0; i < n; i++) {                                                  \
            double x = (double)v[i];                                                       \
            if (isfinite(x)) {                                                             \
                lo = x < lo ? x : lo;                                                      \
                hi = x > hi ? x : hi;                                                      \
            }                                                                              \
        }                                                                                  \
        if (lo > hi) lo = hi = NAN;                                                        \
        range[0] = lo;                                                                     \
        range[1] = hi;                                                                     \
    }

FINITE_RANGE(finite_range_f32, float)
FINITE_RANGE(finite_range_f64, double)

/* numpy.searchsorted(edges, x, side="right") by bisection: the number of edges at or below
 * x (all of them when x is NaN). */
static inline int64_t search_right(const double *edges, int64_t size, double x) {
    int64_t lo = 0, hi = size;
    while (lo < hi) {
        int64_t mid = lo + ((hi - lo) >> 1);
        if (isnan(x) || edges[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Bin of x (already tested or clipped into [edges[0], edges[nb]]): within the m even bins
 * from bin `first` its offset gives the bin, unless it lies within 1e-6 of a bin of an
 * edge; there, and outside the run, the edges decide (the last bin holds its right edge). */
static inline int64_t bin_of(double x, const double *edges, int64_t nb, int64_t first,
                             int64_t m, double base, double scale) {
    double f = (x - base) * scale;
    if (f >= 0.0 && f < (double)m) {
        int64_t i = (int64_t)f;
        if (fabs(f - (double)i - 0.5) <= 0.5 - 1e-6) return first + i;
    }
    int64_t k = search_right(edges, nb + 1, x) - 1;
    return k < nb - 1 ? k : nb - 1;
}

/* One pass of bin_counts for fixed flags (inlined with constants: four loops without
 * per-value tests of the flags). */
#define BIN_PASS(T)                                                                        \
    static inline __attribute__((always_inline)) void bin_pass_##T(                        \
        const T *v, int64_t n, double shift, const double *edges, int64_t nb,              \
        int64_t first, int64_t m, const int clip, const int round32, int64_t *counts) {    \
        double lo = edges[0], top = edges[nb], base = edges[first];                        \
        double scale = m > 0 ? (double)m / (edges[first + m] - base) : 0.0;                \
        for (int64_t i = 0; i < n; i++) {                                                  \
            double x = (double)v[i] + shift;                                               \
            if (round32) x = (double)(float)x;                                             \
            if (clip) {                                                                    \
                if (x - x != 0.0) continue; /* NaN or infinite */                          \
                x = x < lo ? lo : (x > top ? top : x);                                     \
            } else if (!(x >= lo && x <= top)) {                                           \
                continue; /* outside, NaN or infinite */                                   \
            }                                                                              \
            counts[bin_of(x, edges, nb, first, m, base, scale)] += 1;                      \
        }                                                                                  \
    }

typedef float f32;
typedef double f64;
BIN_PASS(f32)
BIN_PASS(f64)

/* numpy.histogram(v, edges)[0] of the finite v = float64(values) + shift (rounded to
 * float32 with round32; clipped to the edges first with clip), added to counts[nb]. */
#define BIN_COUNTS(NAME, T)                                                                \
    MD_EXPORT MD_CLONES void NAME(const T *v, int64_t n, double shift, const double *edges, \
                                  int64_t nedges, int64_t first, int64_t m, int32_t clip,  \
                                  int32_t round32, int64_t *counts) {                      \
        int64_t nb = nedges - 1;                                                           \
        if (nb < 1) return;                                                                \
        if (clip && round32)                                                               \
            bin_pass_##T(v, n, shift, edges, nb, first, m, 1, 1, counts);                  \
        else if (clip)                                                                     \
            bin_pass_##T(v, n, shift, edges, nb, first, m, 1, 0, counts);                  \
        else if (round32)                                                                  \
            bin_pass_##T(v, n, shift, edges, nb, first, m, 0, 1, counts);                  \
        else                                                                               \
            bin_pass_##T(v, n, shift, edges, nb, first, m, 0, 0, counts);                  \
    }

BIN_COUNTS(bin_counts_f32, f32)
BIN_COUNTS(bin_counts_f64, f64)

/* counts[b >> 15] += 1 for the float32 bit patterns b (as int32) of the finite values, the
 * negative ones and zero in counts[0]: 1/256-octave buckets (sign, exponent, 8 mantissa
 * bits). counts holds 1 << 16 zeros on entry. */
MD_EXPORT MD_CLONES void octave_counts(const int32_t *bits, int64_t n, int64_t *counts) {
    for (int64_t i = 0; i < n; i++) {
        int32_t b = bits[i];
        if ((b & 0x7F800000) == 0x7F800000) continue; /* NaN or infinite */
        counts[b > 0 ? b >> 15 : 0] += 1;
    }
}
