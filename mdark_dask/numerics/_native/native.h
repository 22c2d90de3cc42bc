/* The compiled kernels of mdark-dask: every exported C function, declared once.
 *
 * Each <name>.c here is built into its own plain shared library (setup.py), loaded with
 * ctypes by mdark_dask/numerics/native.py, whose FUNCTIONS table gives every function
 * below its library and its ctypes types; tests/test_native.py checks that table against
 * these prototypes. Every .c includes this header, and setup.py builds with
 * -Werror=missing-prototypes, so a function exported without a prototype here does not
 * build.
 *
 * Every exported function is plain C on raw pointers, sizes and strides; the Python
 * wrappers check dtypes, contiguity and shapes before calling. Floating-point code must
 * keep IEEE semantics exactly (no fast-math; setup.py builds with -ffp-contract=off), since
 * the results are compared bit for bit with numpy, astropy and soxspipe.
 */
#ifndef MDARK_NATIVE_H
#define MDARK_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define MD_EXPORT __declspec(dllexport)
#else
#define MD_EXPORT __attribute__((visibility("default")))
#endif

/* Hot loops: built for AVX-512, AVX2 and the x86-64 baseline, chosen when the library loads
 * (GCC on x86-64 Linux only; elsewhere one build for the compiler's default target). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MD_CLONES
#endif

/* Each section below is one library: "library: <name>" is the library built from
 * <name>.c and loaded by the Python module of the same name. */

/* library: masked (mdark_dask/numerics/masked.py): numpy 2.1's sums */
MD_EXPORT float md_pairwise_f32(const float *a, int64_t n);
MD_EXPORT double md_pairwise_f64(const double *a, int64_t n);
MD_EXPORT float md_sum_f32(const float *a, int64_t size);
MD_EXPORT double md_sum_f64(const double *a, int64_t size);
MD_EXPORT int32_t md_masked_mean_std(const float *a, const uint8_t *m, int64_t size,
                                     double *out);

/* library: levelclip (mdark_dask/numerics/levelclip.py): the whole-frame mean/std clip */
MD_EXPORT int32_t md_clip_bounds(const float *x, int64_t size, double sigma, int64_t maxiters,
                                 int32_t soxspipe, double *out);
MD_EXPORT void md_float32_bounds(double lo, double hi, float *out);
MD_EXPORT int64_t md_kept_sum(const float *x, int64_t size, float keep_lo, float keep_hi,
                              int32_t soxspipe, double *sum);
MD_EXPORT int32_t md_kept_squares(const float *x, int64_t size, float keep_lo, float keep_hi,
                                  double mean, int32_t soxspipe, double *out);
MD_EXPORT int32_t md_level_bounds(const float *x, int64_t size, double sigma, int64_t maxiters,
                                  int32_t soxspipe, double *out);
MD_EXPORT int32_t md_level_stats(const float *x, int64_t size, double sigma, int64_t maxiters,
                                 int32_t soxspipe, double *out);

/* library: stackclip (mdark_dask/numerics/stackclip.py): the per-pixel stack clip */
MD_EXPORT double stackclip_median_sorted(const double *s, int64_t a, int64_t n);
MD_EXPORT double stackclip_kth_deviation(const double *s, int64_t a, int64_t b, double med,
                                         int64_t k);
MD_EXPORT double stackclip_mad_std(const double *s, int64_t a, int64_t b, double med);
MD_EXPORT void stackclip_clip_bounds_sorted(const double *s, int64_t n, double sigma,
                                            int64_t maxiters, double *out);
MD_EXPORT int64_t stackclip_batcher_network(int64_t n, int64_t *out);
MD_EXPORT void stackclip_sort_columns(float *key, int64_t stride, const int64_t *net,
                                      int64_t ncomp, int64_t w);
MD_EXPORT void stackclip_kth_deviation_tile(const float *s, int64_t stride, int64_t n,
                                            int64_t w, const double *med, int64_t k,
                                            double *out);
MD_EXPORT void stackclip_bounds_tile(const float *s, int64_t stride, int64_t n, int64_t w,
                                     double sigma, double *med, double *std, double *lo,
                                     double *hi);
MD_EXPORT int32_t stackclip_stack_strip(const float *e, int64_t nf, int64_t ny, int64_t nx,
                                        const double *level_lo, const double *level_hi,
                                        const double *level_mean, float ron2, double sigma,
                                        int64_t maxiters, float *flux, float *errs,
                                        uint8_t *mask, float *noise, float *noise_peel,
                                        double ron, double peel_sigma, int64_t width);

/* library: hotpix (mdark_dask/numerics/hotpix.py): order statistics and the pixel map */
MD_EXPORT int64_t middle_pair_f32(const float *v, int64_t size, const uint8_t *masked,
                                  double cap, double center, int64_t stop, int64_t *hist,
                                  double *out);
MD_EXPORT int64_t middle_pair_f64(const double *v, int64_t size, const uint8_t *masked,
                                  double cap, double center, int64_t stop, int64_t *hist,
                                  double *out);
MD_EXPORT void subtract_f32(const float *restrict v, int64_t size, double level,
                            float *restrict out);
MD_EXPORT void subtract_f64(const double *restrict v, int64_t size, double level,
                            float *restrict out);
MD_EXPORT void flags_f32(const float *restrict combined, double median,
                         const float *restrict noise, const float *restrict noise_peel,
                         double hot_above, double noise_above, double peel_above,
                         uint8_t *restrict bpm, int64_t size);
MD_EXPORT void flags_f64(const double *restrict combined, double median,
                         const double *restrict noise, const double *restrict noise_peel,
                         double hot_above, double noise_above, double peel_above,
                         uint8_t *restrict bpm, int64_t size);

/* library: prepare (mdark_dask/io/prepare.py): stored FITS words to float32 electrons */
MD_EXPORT void prepare_u8(const uint8_t *flat, int64_t start, int64_t row_step,
                          int64_t col_step, int32_t swap, double offset, double gain,
                          float *out, int64_t ny, int64_t nx);
MD_EXPORT void prepare_i8(const int8_t *flat, int64_t start, int64_t row_step,
                          int64_t col_step, int32_t swap, double offset, double gain,
                          float *out, int64_t ny, int64_t nx);
MD_EXPORT void prepare_u16(const uint16_t *flat, int64_t start, int64_t row_step,
                           int64_t col_step, int32_t swap, double offset, double gain,
                           float *out, int64_t ny, int64_t nx);
MD_EXPORT void prepare_i16(const int16_t *flat, int64_t start, int64_t row_step,
                           int64_t col_step, int32_t swap, double offset, double gain,
                           float *out, int64_t ny, int64_t nx);
MD_EXPORT void prepare_u32(const uint32_t *flat, int64_t start, int64_t row_step,
                           int64_t col_step, int32_t swap, double offset, double gain,
                           float *out, int64_t ny, int64_t nx);
MD_EXPORT void prepare_i32(const int32_t *flat, int64_t start, int64_t row_step,
                           int64_t col_step, int32_t swap, double offset, double gain,
                           float *out, int64_t ny, int64_t nx);
MD_EXPORT void prepare_u64(const uint64_t *flat, int64_t start, int64_t row_step,
                           int64_t col_step, int32_t swap, double offset, double gain,
                           float *out, int64_t ny, int64_t nx);
MD_EXPORT void prepare_i64(const int64_t *flat, int64_t start, int64_t row_step,
                           int64_t col_step, int32_t swap, double offset, double gain,
                           float *out, int64_t ny, int64_t nx);
MD_EXPORT void prepare_f32(const float *flat, int64_t start, int64_t row_step,
                           int64_t col_step, int32_t swap, double offset, double gain,
                           float *out, int64_t ny, int64_t nx);
MD_EXPORT void prepare_f64(const double *flat, int64_t start, int64_t row_step,
                           int64_t col_step, int32_t swap, double offset, double gain,
                           float *out, int64_t ny, int64_t nx);

/* library: figures (mdark_dask/report/binning.py): the QC plots' counting passes */
MD_EXPORT void finite_range_f32(const float *v, int64_t n, double *range);
MD_EXPORT void finite_range_f64(const double *v, int64_t n, double *range);
MD_EXPORT void bin_counts_f32(const float *v, int64_t n, double shift, const double *edges,
                              int64_t nedges, int64_t first, int64_t m, int32_t clip,
                              int32_t round32, int64_t *counts);
MD_EXPORT void bin_counts_f64(const double *v, int64_t n, double shift, const double *edges,
                              int64_t nedges, int64_t first, int64_t m, int32_t clip,
                              int32_t round32, int64_t *counts);
MD_EXPORT void octave_counts(const int32_t *bits, int64_t n, int64_t *counts);

#endif
