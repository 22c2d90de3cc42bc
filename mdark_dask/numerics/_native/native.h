/* Shared by the compiled kernels of mdark-dask (loaded with ctypes by mdark_dask/native.py).
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

/* Every shared library is also built as a Python extension by setuptools, which on some
 * platforms wants a module init symbol; the libraries are never imported as modules. */
#define MD_MODULE(name)                                                                    \
    MD_EXPORT void *PyInit_##name(void) { return NULL; }

#endif
