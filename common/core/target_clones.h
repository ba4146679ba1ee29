/* Hot loops over float arrays that the compiler vectorises get an
 * x86-64-v3 copy (AVX2 + FMA) next to the baseline x86-64 one, picked at
 * load time (ifunc): the build targets plain x86-64, so without it they run
 * 4 floats wide on machines that do 8. GCC only (clang 14 builds are the
 * fuzz and sanitizer ones, where speed does not matter). */
#ifndef CLIPCAP_TARGET_CLONES_H
#define CLIPCAP_TARGET_CLONES_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES_X86_64_V3 __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CLONES_X86_64_V3
#endif

#endif
