/* The per-pixel clip-and-stack of a row strip (mdark_dask/numerics/stackclip.py says what
 * and why).
 *
 * For every pixel: level subtraction, the AND of the level-clip masks, astropy's median /
 * MAD-std stack clip (bit-identical to its _sigma_clip_fast in double precision), the
 * sequential float32 means of the data and of the per-frame uncertainties, and the two
 * noise images of mdark_dask/numerics/hotpix.py.
 *
 * The strip is worked through in tiles of one row and a block of columns, frames along
 * the tile's first axis; every step runs across the columns of the tile (counted loops
 * over contiguous floats, no branch on the values) so that GCC makes SIMD code of it:
 * the level subtraction, one comparator network sorting all columns, the first clip
 * iteration and the sums over frames. Later clip iterations regroup the columns still
 * clipping by their count of values. Every lane does the one-pixel operations in the
 * one-pixel order, in the same precision (float32 where the sums are float32, float64
 * where astropy works in float64), so the bytes are those of the one-pixel form.
 *
 * The hot helpers are always inlined into the exported kernel, which MD_CLONES builds for
 * AVX-512, AVX2 and the baseline. The one-pixel forms and the tile steps are exported as
 * well, for the tests. No static mutable state: scratch memory is allocated per call.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"

#define MAD_TO_STD 1.482602218505602 /* astropy's constant, 1 / Phi^-1(3/4) */

#define HOT static inline __attribute__((always_inline))

/* ---------------------------------------------------------------------------------------
 * One pixel: the sorted values s[a:b] as float64. */

HOT double median_sorted(const double *s, int64_t a, int64_t n) {
    if (n % 2 == 0) return 0.5 * (s[a + n / 2] + s[a + n / 2 - 1]);
    return s[a + (n - 1) / 2];
}

/* k-th smallest (0-based) of |s[i] - med| over the sorted range [a, b): walk outward
 * from the first value >= med. */
HOT double kth_deviation(const double *s, int64_t a, int64_t b, double med, int64_t k) {
    int64_t p = a;
    while (p < b && s[p] < med) p++;
    int64_t left = p - 1, right = p;
    double value = 0.0;
    for (int64_t it = 0; it < k + 1; it++) {
        if (left >= a && (right >= b || fabs(s[left] - med) <= fabs(s[right] - med))) {
            value = fabs(s[left] - med);
            left--;
        } else {
            value = fabs(s[right] - med);
            right++;
        }
    }
    return value;
}

HOT double mad_std(const double *s, int64_t a, int64_t b, double med) {
    int64_t n = b - a;
    if (n % 2 == 0) {
        double hi = kth_deviation(s, a, b, med, n / 2);
        double lo = kth_deviation(s, a, b, med, n / 2 - 1);
        return 0.5 * (hi + lo) * MAD_TO_STD;
    }
    return kth_deviation(s, a, b, med, (n - 1) / 2) * MAD_TO_STD;
}

MD_EXPORT double stackclip_median_sorted(const double *s, int64_t a, int64_t n) {
    return median_sorted(s, a, n);
}

MD_EXPORT double stackclip_kth_deviation(const double *s, int64_t a, int64_t b, double med,
                                         int64_t k) {
    return kth_deviation(s, a, b, med, k);
}

MD_EXPORT double stackclip_mad_std(const double *s, int64_t a, int64_t b, double med) {
    return mad_std(s, a, b, med);
}

/* astropy's median/MAD-std clip bounds of the first n sorted values of s: out[0] = lo,
 * out[1] = hi (NaN when n is 0). Every iteration keeps a contiguous range. */
MD_EXPORT void stackclip_clip_bounds_sorted(const double *s, int64_t n, double sigma,
                                            int64_t maxiters, double *out) {
    int64_t a = 0, b = n, iteration = 0;
    double lo = NAN, hi = NAN;
    out[0] = lo;
    out[1] = hi;
    if (n == 0) return;
    for (;;) {
        int64_t count = b - a;
        double med = median_sorted(s, a, count);
        double std = mad_std(s, a, b, med);
        lo = med - sigma * std;
        hi = med + sigma * std;
        int64_t na = a;
        while (na < b && s[na] < lo) na++;
        int64_t nb = b;
        while (nb > na && s[nb - 1] > hi) nb--;
        if (nb - na == count) break;
        a = na;
        b = nb;
        iteration++;
        if (iteration >= maxiters || a == b) break;
    }
    out[0] = lo;
    out[1] = hi;
}

/* ---------------------------------------------------------------------------------------
 * The comparator network. */

/* Comparators (i, j), i < j, of Batcher's odd-even merge sort of n values, into out[2 c],
 * out[2 c + 1] (when out is not NULL); returns their count. The network of the next power
 * of two, less the comparators that touch an index of n or more (with values above all
 * others padded there, they never move anything). */
MD_EXPORT int64_t stackclip_batcher_network(int64_t n, int64_t *out) {
    int64_t size = 1, count = 0;
    while (size < n) size *= 2;
    for (int64_t p = 1; p < size; p *= 2) {
        for (int64_t k = p; k >= 1; k /= 2) {
            for (int64_t j = k % p; j + k < size; j += 2 * k) {
                int64_t m = k < size - j - k ? k : size - j - k;
                for (int64_t i = 0; i < m; i++) {
                    if ((i + j) / (2 * p) == (i + j + k) / (2 * p) && i + j + k < n) {
                        if (out) {
                            out[2 * count] = i + j;
                            out[2 * count + 1] = i + j + k;
                        }
                        count++;
                    }
                }
            }
        }
    }
    return count;
}

/* One comparator over the columns x < w: exchanges the values (does not copy one of two
 * equal values, as min / max may with -0.0 and +0.0), so a column stays a permutation. */
HOT void exchange(float *restrict ri, float *restrict rj, int64_t w) {
    for (int64_t x = 0; x < w; x++) {
        float u = ri[x], v = rj[x];
        int smaller = u <= v;
        ri[x] = smaller ? u : v;
        rj[x] = smaller ? v : u;
    }
}

/* Sort every column key[:, x], x < w (rows `stride` floats apart), by the network. No NaN
 * in key. */
HOT void sort_columns(float *key, int64_t stride, const int64_t *net, int64_t ncomp,
                      int64_t w) {
    for (int64_t c = 0; c < ncomp; c++)
        exchange(key + net[2 * c] * stride, key + net[2 * c + 1] * stride, w);
}

MD_EXPORT void stackclip_sort_columns(float *key, int64_t stride, const int64_t *net,
                                      int64_t ncomp, int64_t w) {
    sort_columns(key, stride, net, ncomp, w);
}

/* ---------------------------------------------------------------------------------------
 * One clip iteration across the columns of a tile. */

HOT void fill(double *restrict out, double value, int64_t w) {
    for (int64_t x = 0; x < w; x++) out[x] = value;
}

HOT void deviation_run(const float *restrict left, const float *restrict right,
                       const double *restrict med, double *restrict out, int64_t w) {
    for (int64_t x = 0; x < w; x++) {
        double dl = fabs((double)left[x] - med[x]);
        double dr = fabs((double)right[x] - med[x]);
        double worst = dl > dr ? dl : dr;
        out[x] = worst < out[x] ? worst : out[x];
    }
}

/* out[x]: the k-th smallest (0-based) of |s[i, x] - med[x]|, i < n, for the sorted columns
 * x < w; the number kth_deviation gives. fl(s - med) does not decrease with s, so the
 * values with deviation at most t are consecutive for every t and the largest deviation of
 * a run of consecutive values is at one of its ends: the k-th smallest deviation is the
 * smallest over the runs of k + 1 values of their larger end deviation. */
HOT void kth_deviation_tile(const float *s, int64_t stride, int64_t n, int64_t w,
                            const double *med, int64_t k, double *out) {
    fill(out, INFINITY, w);
    for (int64_t first = 0; first < n - k; first++)
        deviation_run(s + first * stride, s + (first + k) * stride, med, out, w);
}

HOT void mean_pair(const float *restrict upper, const float *restrict lower,
                   double *restrict med, int64_t w) {
    for (int64_t x = 0; x < w; x++) med[x] = 0.5 * ((double)upper[x] + (double)lower[x]);
}

HOT void widen(const float *restrict middle, double *restrict med, int64_t w) {
    for (int64_t x = 0; x < w; x++) med[x] = (double)middle[x];
}

HOT void std_pair(const double *restrict hi, const double *restrict lo, double *restrict std,
                  int64_t w) {
    for (int64_t x = 0; x < w; x++) std[x] = 0.5 * (hi[x] + lo[x]) * MAD_TO_STD;
}

HOT void std_single(const double *restrict hi, double *restrict std, int64_t w) {
    for (int64_t x = 0; x < w; x++) std[x] = hi[x] * MAD_TO_STD;
}

HOT void bounds(const double *restrict med, const double *restrict std, double sigma,
                double *restrict lo, double *restrict hi, int64_t w) {
    for (int64_t x = 0; x < w; x++) {
        lo[x] = med[x] - sigma * std[x];
        hi[x] = med[x] + sigma * std[x];
    }
}

/* One clip iteration over the n >= 1 sorted values s[:n, x] of the columns x < w: median,
 * MAD-std and bounds, the numbers of median_sorted, mad_std and clip_bounds_sorted. */
HOT void bounds_tile(const float *s, int64_t stride, int64_t n, int64_t w, double sigma,
                     double *med, double *std, double *lo, double *hi) {
    int64_t m = n / 2;
    if (n % 2 == 0) {
        mean_pair(s + m * stride, s + (m - 1) * stride, med, w);
        kth_deviation_tile(s, stride, n, w, med, m, hi);
        kth_deviation_tile(s, stride, n, w, med, m - 1, lo);
        std_pair(hi, lo, std, w);
    } else {
        widen(s + m * stride, med, w);
        kth_deviation_tile(s, stride, n, w, med, m, hi);
        std_single(hi, std, w);
    }
    bounds(med, std, sigma, lo, hi, w);
}

MD_EXPORT void stackclip_kth_deviation_tile(const float *s, int64_t stride, int64_t n,
                                            int64_t w, const double *med, int64_t k,
                                            double *out) {
    kth_deviation_tile(s, stride, n, w, med, k, out);
}

MD_EXPORT void stackclip_bounds_tile(const float *s, int64_t stride, int64_t n, int64_t w,
                                     double sigma, double *med, double *std, double *lo,
                                     double *hi) {
    bounds_tile(s, stride, n, w, sigma, med, std, lo, hi);
}

/* ---------------------------------------------------------------------------------------
 * The strip kernel. */

HOT void gather(const float *restrict src, const int64_t *restrict at, float *restrict out,
                int64_t g) {
    for (int64_t r = 0; r < g; r++) out[r] = src[at[r]];
}

/* The clip iterations left after the first one over the whole tile: the columns with all
 * nf values finite and bit 0 of todo (a value outside lo, hi), and the columns with fewer
 * finite values (count), which start from the first iteration. Updates lo, hi and, for the
 * columns with fewer values, first_std. Each iteration copies every column still clipping,
 * from the start of its range, into tile, grouped by the count of values left (counting
 * sort), and runs bounds_tile on each group. Rows of key and tile are `width` apart. */
HOT void finish_clip(const float *key, int64_t width, const int32_t *count,
                     const uint8_t *todo, int64_t nf, int64_t w, double sigma,
                     int64_t maxiters, double *lo, double *hi, double *first_std,
                     int64_t *scratch, float *tile, double *fscratch) {
    int64_t *col = scratch;              /* pending columns */
    int64_t *start = scratch + width;    /* their range [start, stop) of sorted values */
    int64_t *stop = scratch + 2 * width;
    int64_t *iters = scratch + 3 * width; /* clip iterations (bounds) done */
    int64_t *due = scratch + 4 * width;  /* 1: next bounds due, 0: bounds of range known */
    int64_t *order = scratch + 5 * width;
    int64_t *base = scratch + 6 * width; /* offsets in key of the columns of a group */
    int64_t *hist = scratch + 7 * width; /* nf + 2 */
    double *gmed = fscratch, *gstd = fscratch + width;
    double *glo = fscratch + 2 * width, *ghi = fscratch + 3 * width;
    /* the pending columns, without a branch on the values (a column with no finite value
     * is rare, and needs no clip) */
    int64_t pending = 0;
    for (int64_t x = 0; x < w; x++) {
        int64_t n = count[x];
        int64_t full = n == nf;
        col[pending] = x;
        start[pending] = 0;
        stop[pending] = n;
        iters[pending] = full;
        due[pending] = !full;
        pending += full ? (int64_t)(todo[x] & 1) : (int64_t)(n != 0);
        if (n == 0) {
            lo[x] = NAN;
            hi[x] = NAN;
            first_std[x] = NAN;
        }
    }
    while (pending > 0) {
        for (int64_t c = 0; c < nf + 2; c++) hist[c] = 0;
        for (int64_t q = 0; q < pending; q++)
            if (due[q]) hist[stop[q] - start[q] + 1]++;
        for (int64_t c = 1; c < nf + 2; c++) hist[c] += hist[c - 1];
        int64_t n_due = hist[nf + 1];
        for (int64_t q = 0; q < pending; q++) {
            if (due[q]) {
                int64_t c = stop[q] - start[q];
                order[hist[c]] = q;
                hist[c]++;
            }
        }
        int64_t first = 0;
        while (first < n_due) {
            int64_t c = stop[order[first]] - start[order[first]];
            int64_t last = first + 1;
            while (last < n_due && stop[order[last]] - start[order[last]] == c) last++;
            int64_t g = last - first;
            for (int64_t r = 0; r < g; r++) {
                int64_t q = order[first + r];
                base[r] = start[q] * width + col[q];
            }
            for (int64_t j = 0; j < c; j++) gather(key + j * width, base, tile + j * width, g);
            bounds_tile(tile, width, c, g, sigma, gmed, gstd, glo, ghi);
            for (int64_t r = 0; r < g; r++) {
                int64_t q = order[first + r];
                int64_t x = col[q];
                lo[x] = glo[r];
                hi[x] = ghi[r];
                if (iters[q] == 0) first_std[x] = gstd[r];
                iters[q]++;
            }
            first = last;
        }
        /* the values outside the bounds (a prefix and a suffix of the range); the columns
         * that lose some and have iterations left go on with the range in between */
        int64_t kept = 0;
        for (int64_t q = 0; q < pending; q++) {
            int64_t x = col[q], a = start[q], b = stop[q];
            double low = lo[x], high = hi[x];
            int64_t na = a;
            while (na < b && (double)key[na * width + x] < low) na++;
            int64_t nb = b;
            while (nb > na && (double)key[(nb - 1) * width + x] > high) nb--;
            if (nb - na == b - a || iters[q] >= maxiters || na == nb) continue;
            col[kept] = x;
            start[kept] = na;
            stop[kept] = nb;
            iters[kept] = iters[q];
            due[kept] = 1;
            kept++;
        }
        pending = kept;
    }
}

/* The range [a, b) of the sorted s[:n, x] (n >= 5, as float64) left after peeling isolated
 * extreme values: an extreme value is isolated when more than gap separates it from its
 * neighbour; the more deviant end from the median is tried first, then the other; peeling
 * stops when neither end is isolated or four values are left. */
HOT void peel_range(const float *s, int64_t stride, int64_t x, int64_t n, double gap,
                    int64_t *pa, int64_t *pb) {
    int64_t a = 0, b = n;
    while (b - a > 4) {
        int64_t c = b - a;
        double med;
        if (c % 2 == 0)
            med = 0.5 * ((double)s[(a + c / 2) * stride + x] +
                         (double)s[(a + c / 2 - 1) * stride + x]);
        else
            med = (double)s[(a + (c - 1) / 2) * stride + x];
        double low = (double)s[a * stride + x];
        double high = (double)s[(b - 1) * stride + x];
        int top_first = high - med >= med - low;
        int top_isolated = high - (double)s[(b - 2) * stride + x] > gap;
        int bottom_isolated = (double)s[(a + 1) * stride + x] - low > gap;
        if (top_isolated && (top_first || !bottom_isolated))
            b--;
        else if (bottom_isolated)
            a++;
        else
            break;
    }
    *pa = a;
    *pb = b;
}

/* Level subtraction of frame i over the tile's columns: the level masks (AND over frames),
 * float32(E - m), the finite values as sort keys (+inf for the others) and their count. */
HOT void level_row(const float *restrict src, double m, double llo, double lhi,
                   float *restrict d, float *restrict key, int32_t *restrict count,
                   uint8_t *restrict masked, int64_t w) {
    for (int64_t x = 0; x < w; x++) {
        double v64 = (double)src[x];
        int inside = (v64 >= llo) & (v64 <= lhi);
        masked[x] = masked[x] & !inside;
        float dv = (float)(v64 - m);
        d[x] = dv;
        int finite = isfinite(dv);
        key[x] = finite ? dv : INFINITY;
        count[x] += finite;
    }
}

HOT void clip_todo(const float *restrict bottom, const float *restrict top,
                   const double *restrict lo, const double *restrict hi,
                   uint8_t *restrict todo, int64_t w) {
    for (int64_t x = 0; x < w; x++) {
        int clip = ((double)bottom[x] < lo[x]) | ((double)top[x] > hi[x]);
        todo[x] = clip ? 1 : 0;
    }
}

HOT void peel_todo(const float *restrict bottom, const float *restrict top,
                   const float *restrict above, const float *restrict below,
                   const double *restrict std, double ron, double peel_sigma,
                   uint8_t *restrict todo, int64_t w) {
    for (int64_t x = 0; x < w; x++) {
        double gap = peel_sigma * (std[x] > ron ? std[x] : ron);
        double low = (double)bottom[x];
        double high = (double)top[x];
        int isolated = (high - (double)below[x] > gap) | ((double)above[x] - low > gap);
        todo[x] |= isolated ? 2 : 0;
    }
}

/* keep ? v : +0.0 and c ? a : b through the bits (keep, c: 0 or 1), which GCC vectorises
 * where it leaves the same selects as branches. Bit for bit the selects. */
HOT double or_zero(double v, int64_t keep) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= -(uint64_t)keep;
    memcpy(&v, &bits, sizeof bits);
    return v;
}

HOT float or_zero_f(float v, int32_t keep) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= -(uint32_t)keep;
    memcpy(&v, &bits, sizeof bits);
    return v;
}

HOT float pick(int32_t c, float a, float b) {
    uint32_t ba, bb, m = -(uint32_t)c;
    memcpy(&ba, &a, sizeof ba);
    memcpy(&bb, &b, sizeof bb);
    ba = (ba & m) | (bb & ~m);
    memcpy(&a, &ba, sizeof ba);
    return a;
}

/* Frame-order sums over the kept values of frame i: float32 data and uncertainty, float64
 * data, kept count. A value left out is added as +0.0 (never -0.0), which changes no sum.
 * float32(sqrt(float64(f))) is the correctly rounded float32 square root of f (double
 * rounding is innocuous for sqrt from 53 to 24 bits; also checked for all 2^32 floats), so
 * GCC may, and does, compute it with one float32 sqrt: the same bits, twice the lanes. */
HOT void sum_row(const float *restrict src, const float *restrict d, const double *restrict lo,
                 const double *restrict hi, float ron2, float *restrict acc,
                 float *restrict acc_sig, double *restrict acc64, int32_t *restrict kept,
                 int64_t w) {
    for (int64_t x = 0; x < w; x++) {
        float dv = d[x];
        float v = src[x];
        double dv64 = (double)dv;
        int keep = (dv64 >= lo[x]) & (dv64 <= hi[x]);
        float pos = v > 0.0f ? v : 0.0f;
        float sig = (float)sqrt((double)(pos + ron2));
        acc[x] += or_zero_f(dv, keep);
        acc_sig[x] += or_zero_f(sig, keep);
        acc64[x] += or_zero(dv64, keep);
        kept[x] += keep;
    }
}

HOT void square_row(const float *restrict d, const double *restrict lo,
                    const double *restrict hi, const double *restrict mean64,
                    double *restrict ss, int64_t w) {
    for (int64_t x = 0; x < w; x++) {
        double dv64 = (double)d[x];
        int keep = (dv64 >= lo[x]) & (dv64 <= hi[x]);
        double dd = dv64 - mean64[x];
        ss[x] += or_zero(dd * dd, keep);
    }
}

HOT void peel_sum_row(const float *restrict key, int64_t k, const int64_t *restrict pa,
                      const int64_t *restrict pb, double *restrict acc64, int64_t w) {
    for (int64_t x = 0; x < w; x++) {
        int64_t peeled = (k >= pa[x]) & (k < pb[x]);
        acc64[x] += or_zero((double)key[x], peeled);
    }
}

HOT void peel_square_row(const float *restrict key, int64_t k, const int64_t *restrict pa,
                         const int64_t *restrict pb, const double *restrict mean64,
                         double *restrict ss, int64_t w) {
    for (int64_t x = 0; x < w; x++) {
        int64_t peeled = (k >= pa[x]) & (k < pb[x]);
        double dd = (double)key[x] - mean64[x];
        ss[x] += or_zero(dd * dd, peeled);
    }
}

/* The pixels' results from the sums: mean, its uncertainty, the mask and the noise. A
 * pixel with nothing kept gets NaN (the lanes' 0 / 0 is replaced, not written). */
HOT void finish_means(const int32_t *restrict kept, const float *restrict acc,
                      const float *restrict acc_sig, const double *restrict ss,
                      const uint8_t *restrict level_masked, float *restrict flux,
                      float *restrict errs, uint8_t *restrict mask, float *restrict noise,
                      int64_t w) {
    for (int64_t x = 0; x < w; x++) {
        int32_t k = kept[x];
        double kd = (double)k;
        float fk = (float)k;
        float scatter = (float)sqrt(ss[x] / kd);
        float mean = acc[x] / fk;
        float error = (float)((double)(acc_sig[x] / fk) / sqrt(kd));
        noise[x] = pick(k >= 2, scatter, NAN);
        flux[x] = pick(k != 0, mean, NAN);
        errs[x] = pick(k != 0, error, NAN);
        mask[x] = (uint8_t)((k == 0) | (level_masked[x] != 0));
    }
}

HOT void peel_mean(const double *restrict acc64, const int64_t *restrict pa,
                   const int64_t *restrict pb, double *restrict mean64, int64_t w) {
    for (int64_t x = 0; x < w; x++) {
        double size = (double)(pb[x] - pa[x]);
        mean64[x] = acc64[x] / (size > 1.0 ? size : 1.0);
    }
}

HOT void peel_finish(const double *restrict ss, const int64_t *restrict pa,
                     const int64_t *restrict pb, float *restrict noise_peel, int64_t w) {
    for (int64_t x = 0; x < w; x++) {
        int64_t size = pb[x] - pa[x];
        float scatter = (float)sqrt(ss[x] / (double)size);
        noise_peel[x] = pick(size > 0, scatter, NAN);
    }
}

#define CARVE(ptr, type, count)                                                            \
    type *ptr = (type *)cursor;                                                            \
    cursor += ((size_t)(count) * sizeof(type) + 63) / 64 * 64

/* Fill flux, errs, mask, noise and noise_peel (ny, nx, C order) from the (nf, ny, nx)
 * C-order strip e; tiles of `width` columns (>= 1). Returns 0, or -1 when out of memory
 * (nothing written then). mdark_dask/numerics/stackclip.py documents every output. */
MD_EXPORT MD_CLONES int32_t stackclip_stack_strip(
    const float *e, int64_t nf, int64_t ny, int64_t nx, const double *level_lo,
    const double *level_hi, const double *level_mean, float ron2, double sigma,
    int64_t maxiters, float *flux, float *errs, uint8_t *mask, float *noise,
    float *noise_peel, double ron, double peel_sigma, int64_t width) {
    if (nf == 0) {
        for (int64_t p = 0; p < ny * nx; p++) {
            flux[p] = NAN;
            errs[p] = NAN;
            noise[p] = NAN;
            noise_peel[p] = NAN;
            mask[p] = 1;
        }
        return 0;
    }
    int64_t ncomp = stackclip_batcher_network(nf, NULL);
    size_t plane = (size_t)nf * (size_t)width;
    size_t total = 0;
    total += 3 * ((plane * sizeof(float) + 63) / 64 * 64);
    total += 4 * (((size_t)width * sizeof(float) + 63) / 64 * 64);   /* acc, acc_sig, i32s */
    total += 2 * (((size_t)width + 63) / 64 * 64);                    /* uint8 */
    total += 9 * (((size_t)width * sizeof(double) + 63) / 64 * 64);  /* f64 and i64 */
    total += (((size_t)(7 * width + nf + 2) * sizeof(int64_t) + 63) / 64 * 64);
    total += (((size_t)(4 * width) * sizeof(double) + 63) / 64 * 64);
    total += (((size_t)(2 * ncomp) * sizeof(int64_t) + 63) / 64 * 64);
    char *memory = aligned_alloc(64, total + 64);
    if (memory == NULL) return -1;
    char *cursor = memory;
    CARVE(d, float, plane);    /* level-subtracted, frame order */
    CARVE(key, float, plane);  /* finite values sorted, then +inf */
    CARVE(tile, float, plane); /* ranges still clipping */
    CARVE(acc, float, width);
    CARVE(acc_sig, float, width);
    CARVE(count, int32_t, width); /* finite values */
    CARVE(kept, int32_t, width);
    CARVE(level_masked, uint8_t, width);
    CARVE(todo, uint8_t, width);
    CARVE(med, double, width);
    CARVE(std, double, width); /* first iteration's MAD-std */
    CARVE(lo, double, width);
    CARVE(hi, double, width);
    CARVE(acc64, double, width);
    CARVE(mean64, double, width);
    CARVE(ss, double, width);
    CARVE(peel_a, int64_t, width);
    CARVE(peel_b, int64_t, width);
    CARVE(scratch, int64_t, 7 * width + nf + 2);
    CARVE(fscratch, double, 4 * width);
    CARVE(net, int64_t, 2 * ncomp);
    stackclip_batcher_network(nf, net);

    for (int64_t y = 0; y < ny; y++) {
        for (int64_t x0 = 0; x0 < nx; x0 += width) {
            int64_t w = width < nx - x0 ? width : nx - x0;
            const float *row0 = e + y * nx + x0; /* frame i at row0 + i * ny * nx */
            int64_t fstride = ny * nx;
            size_t out0 = (size_t)(y * nx + x0);
            /* level subtraction, level masks, the finite values as sort keys */
            for (int64_t x = 0; x < w; x++) {
                count[x] = 0;
                level_masked[x] = 1;
            }
            for (int64_t i = 0; i < nf; i++)
                level_row(row0 + i * fstride, level_mean[i], level_lo[i], level_hi[i],
                          d + i * width, key + i * width, count, level_masked, w);
            sort_columns(key, width, net, ncomp, w);
            /* first clip iteration for all columns as if all values were finite; then the
             * columns that clip some value or have fewer finite values */
            bounds_tile(key, width, nf, w, sigma, med, std, lo, hi);
            const float *bottom = key, *top = key + (nf - 1) * width;
            clip_todo(bottom, top, lo, hi, todo, w);
            if (nf >= 5)
                peel_todo(bottom, top, key + width, key + (nf - 2) * width, std, ron,
                          peel_sigma, todo, w);
            finish_clip(key, width, count, todo, nf, w, sigma, maxiters, lo, hi, std, scratch,
                        tile, fscratch);
            /* the peeled range of the sorted values, pixel by pixel where an end is
             * isolated */
            for (int64_t x = 0; x < w; x++) {
                int64_t n = count[x];
                if (n < 5) {
                    peel_a[x] = 0;
                    peel_b[x] = 0;
                } else if (n == nf && (todo[x] & 2) == 0) {
                    peel_a[x] = 0;
                    peel_b[x] = n;
                } else {
                    double gap = peel_sigma * (std[x] > ron ? std[x] : ron);
                    peel_range(key, width, x, n, gap, &peel_a[x], &peel_b[x]);
                }
            }
            /* frame-order sums over the kept values */
            for (int64_t x = 0; x < w; x++) {
                acc[x] = 0.0f;
                acc_sig[x] = 0.0f;
                acc64[x] = 0.0;
                kept[x] = 0;
            }
            for (int64_t i = 0; i < nf; i++)
                sum_row(row0 + i * fstride, d + i * width, lo, hi, ron2, acc, acc_sig, acc64,
                        kept, w);
            for (int64_t x = 0; x < w; x++) {
                double k = (double)kept[x];
                mean64[x] = acc64[x] / (k > 1.0 ? k : 1.0);
                ss[x] = 0.0;
            }
            for (int64_t i = 0; i < nf; i++) square_row(d + i * width, lo, hi, mean64, ss, w);
            finish_means(kept, acc, acc_sig, ss, level_masked, flux + out0, errs + out0,
                         mask + out0, noise + out0, w);
            /* the peeled scatter: sorted-order sums over each pixel's peeled range */
            for (int64_t x = 0; x < w; x++) {
                acc64[x] = 0.0;
                ss[x] = 0.0;
            }
            for (int64_t k = 0; k < nf; k++)
                peel_sum_row(key + k * width, k, peel_a, peel_b, acc64, w);
            peel_mean(acc64, peel_a, peel_b, mean64, w);
            for (int64_t k = 0; k < nf; k++)
                peel_square_row(key + k * width, k, peel_a, peel_b, mean64, ss, w);
            peel_finish(ss, peel_a, peel_b, noise_peel + out0, w);
        }
    }
    free(memory);
    return 0;
}
