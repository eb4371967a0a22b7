// The CPU kernels for AVX2 + FMA + F16C, called only where the CPU has them.
#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "../ternary_ops.h"
#include "convert.h"
#include "isa.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace hvd_ext {
namespace cpu {
namespace avx2 {

// 8 floats per vector; fp16 through F16C (round to nearest even, as torch converts).
struct Simd {
  static constexpr int kWidth = 8;
  using V = __m256;
  static HVD_EXT_INLINE V set1(float v) { return _mm256_set1_ps(v); }
  static HVD_EXT_INLINE V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static HVD_EXT_INLINE V add(V a, V b) { return _mm256_add_ps(a, b); }
  static HVD_EXT_INLINE V load(const float* p) { return _mm256_loadu_ps(p); }
  static HVD_EXT_INLINE V load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static HVD_EXT_INLINE void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static HVD_EXT_INLINE void store(uint16_t* p, V v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                     _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // sum(p[0:done]^2): each lane sums 8 squares in float32 (FMA), every 256 elements go into
  // float64 accumulators; *done = n rounded down to 256. Relative error below 8 * 2^-24.
  static HVD_EXT_INLINE double sq_sum(const float* p, int64_t n, int64_t* done) {
    __m256d total[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    int64_t j = 0;
    for (; j + 256 <= n; j += 256) {
      __m256 acc[4];
      for (int k = 0; k < 4; ++k) {
        const __m256 v = _mm256_loadu_ps(p + j + 8 * k);
        acc[k] = _mm256_mul_ps(v, v);
      }
      for (int g = 1; g < 8; ++g)
        for (int k = 0; k < 4; ++k) {
          const __m256 v = _mm256_loadu_ps(p + j + 32 * g + 8 * k);
          acc[k] = _mm256_fmadd_ps(v, v, acc[k]);
        }
      const __m256 s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
      total[0] = _mm256_add_pd(total[0], _mm256_cvtps_pd(_mm256_castps256_ps128(s)));
      total[1] = _mm256_add_pd(total[1], _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)));
    }
    *done = j;
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, _mm256_add_pd(total[0], total[1]));
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  }
};
#define HVD_EXT_ISA_NAME "avx2"
#include "typed_kernels.inc"
#undef HVD_EXT_ISA_NAME

}  // namespace avx2
}  // namespace cpu
}  // namespace hvd_ext

#pragma GCC pop_options
#endif  // __x86_64__
