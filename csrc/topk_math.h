// The per-element math of the top-k codec (kernels.h: topk_encode_cpu), one place for the CPU and
// the CUDA code: the selection key, the value codes and their decoding.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define HVD_EXT_TOPK_HD __host__ __device__ inline
#else
#define HVD_EXT_TOPK_HD inline
#endif

namespace hvd_ext {
namespace topk {

// NOTE: [top-k order] An entry's key is the bit pattern of |v| as an unsigned integer: for
// non-negative floats it orders as the value does, infinities above every finite value and NaNs
// above infinities, so the order is total and every rank and device selects the same entries.
// Ties go to the lower position.
HVD_EXT_TOPK_HD uint32_t key(float v) {
  uint32_t u;
#ifdef __CUDA_ARCH__
  u = __float_as_uint(v);
#else
  std::memcpy(&u, &v, sizeof u);
#endif
  return u & 0x7fffffffu;
}

// Codes of `bits` (1, 2, 4, 8) per value, L = 2^(bits-1) - 1:
//   bits >= 2: q = clamp(round_half_even(v / scale), -L, L), code = q + L, value q * scale,
//              scale = max |v| over the chunk's selected entries / L;
//   bits == 1: code = (v >= 0), value +-scale, scale = mean |v| over the selected entries.
HVD_EXT_TOPK_HD int levels(int bits) { return bits == 1 ? 1 : (1 << (bits - 1)) - 1; }

HVD_EXT_TOPK_HD uint32_t code_of(float v, float scale, int bits) {
  if (bits == 1) return v >= 0.f ? 1u : 0u;
  const float L = static_cast<float>(levels(bits));
  const float div = scale > 0.f ? scale : 1.f;
#ifdef __CUDA_ARCH__
  const float q = fminf(L, fmaxf(-L, nearbyintf(__fdiv_rn(v, div))));
#else
  const float q = std::fmin(L, std::fmax(-L, std::nearbyint(v / div)));
#endif
  return static_cast<uint32_t>(static_cast<int>(q) + levels(bits));
}

HVD_EXT_TOPK_HD float value_of(uint32_t code, float scale, int bits) {
  if (bits == 1) return code ? scale : -scale;
#ifdef __CUDA_ARCH__
  return __fmul_rn(static_cast<float>(static_cast<int>(code) - levels(bits)), scale);
#else
  return static_cast<float>(static_cast<int>(code) - levels(bits)) * scale;
#endif
}

// Code s of a chunk's packed codes: bits (1, 2, 4, 8) at bit s * bits, little-endian in bytes.
HVD_EXT_TOPK_HD uint32_t read_code(const uint8_t* codes, int64_t s, int bits) {
  const int64_t at = s * bits;
  return (codes[at >> 3] >> (at & 7)) & ((1u << bits) - 1u);
}

}  // namespace topk
}  // namespace hvd_ext
