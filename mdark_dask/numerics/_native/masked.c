/* numpy.sum, np.ma.mean and np.ma.std in numpy 2.1's order (mdark_dask/numerics/masked.py),
 * built on the pairwise sums of pairwise.h.
 *
 * Every function is reentrant: scratch is malloc'ed per call (a buffer of 8192 doubles);
 * those return -1 when malloc fails.
 */
#include <stdlib.h>

#include "native.h"
#include "pairwise.h"

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
