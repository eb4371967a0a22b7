// The CPU kernels for AVX-512 (F, BW, VL) with FMA and F16C, called only where the CPU has them.
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
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
// GCC's own AVX-512 headers start some conversions from a self-initialised "undefined" vector,
// which -Wmaybe-uninitialized reports once they are inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace hvd_ext {
namespace cpu {
namespace avx512 {

// 16 floats per vector; fp16 through vcvtps2ph/vcvtph2ps (round to nearest even).
struct Simd {
  static constexpr int kWidth = 16;
  using V = __m512;
  static HVD_EXT_INLINE V set1(float v) { return _mm512_set1_ps(v); }
  static HVD_EXT_INLINE V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static HVD_EXT_INLINE V add(V a, V b) { return _mm512_add_ps(a, b); }
  static HVD_EXT_INLINE V load(const float* p) { return _mm512_loadu_ps(p); }
  static HVD_EXT_INLINE V load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static HVD_EXT_INLINE void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static HVD_EXT_INLINE void store(uint16_t* p, V v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                        _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // sum(p[0:done]^2): each lane sums 4 squares in float32 (FMA), every 256 elements go into
  // float64 accumulators; *done = n rounded down to 256. Relative error below 4 * 2^-24.
  static HVD_EXT_INLINE double sq_sum(const float* p, int64_t n, int64_t* done) {
    __m512d total[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
    int64_t j = 0;
    for (; j + 256 <= n; j += 256) {
      __m512 acc[4];
      for (int k = 0; k < 4; ++k) {
        const __m512 v = _mm512_loadu_ps(p + j + 16 * k);
        acc[k] = _mm512_mul_ps(v, v);
      }
      for (int g = 1; g < 4; ++g)
        for (int k = 0; k < 4; ++k) {
          const __m512 v = _mm512_loadu_ps(p + j + 64 * g + 16 * k);
          acc[k] = _mm512_fmadd_ps(v, v, acc[k]);
        }
      const __m512 s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
      const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1));
      total[0] = _mm512_add_pd(total[0], _mm512_cvtps_pd(_mm512_castps512_ps256(s)));
      total[1] = _mm512_add_pd(total[1], _mm512_cvtps_pd(hi));
    }
    *done = j;
    alignas(64) double lanes[8];
    _mm512_store_pd(lanes, _mm512_add_pd(total[0], total[1]));
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
           ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  }
};
#define HVD_EXT_ISA_NAME "avx512"
#include "typed_kernels.inc"
#undef HVD_EXT_ISA_NAME

}  // namespace avx512
}  // namespace cpu
}  // namespace hvd_ext

#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif  // __x86_64__
