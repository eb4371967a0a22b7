// Scalar dtype conversions and per-dtype load/store, shared by every CPU translation unit.
// Everything here has internal linkage (an unnamed namespace), so each instruction-set variant
// compiles its own copy under its own target options, and the linker can never pick a copy built
// for a wider instruction set where a narrower one was meant.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../kernels.h"

#define HVD_EXT_INLINE inline __attribute__((always_inline))

namespace hvd_ext {
namespace cpu {
namespace {  // internal linkage: see the top of this file

HVD_EXT_INLINE uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
HVD_EXT_INLINE float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Branch-free (masks, no selects), so the compiler vectorises the conversion loops.
HVD_EXT_INLINE uint32_t select(bool c, uint32_t a, uint32_t b) {
  const uint32_t m = 0u - static_cast<uint32_t>(c);
  return (a & m) | (b & ~m);
}

HVD_EXT_INLINE uint16_t half_from_float(float f) {
  const uint32_t u = bits_of(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t x = u & 0x7fffffffu;
  // Normal halves: rebias the exponent (127 -> 15) and round to nearest, ties to even.
  const uint32_t normal = (x - (112u << 23) + 0xfffu + ((x >> 13) & 1u)) >> 13;
  // Below the smallest normal half (2^-14): adding 0.5f puts the float's last mantissa bit at
  // 2^-24, the subnormal half's unit, so the FPU does the round-to-nearest-even for us.
  const uint32_t subnormal = bits_of(float_of(x) + 0.5f) - 0x3f000000u;
  const uint32_t inf_nan = 0x7c00u | (static_cast<uint32_t>(x > 0x7f800000u) << 9);
  uint32_t h = select(x < 0x38800000u, subnormal, normal);
  h = select(x >= 0x477ff000u, 0x7c00u, h);  // >= 65520 rounds past the largest half
  h = select(x >= 0x7f800000u, inf_nan, h);  // inf stays inf, nan stays a (quiet) nan
  return static_cast<uint16_t>(sign | h);
}

HVD_EXT_INLINE float float_from_half(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7fffu;
  const uint32_t normal = (em << 13) + (112u << 23);
  const uint32_t inf_nan = 0x7f800000u | ((em & 0x3ffu) << 13);
  // Zero or subnormal: em units of 2^-24 (exact in float).
  const uint32_t subnormal = bits_of(static_cast<float>(em) * 5.9604644775390625e-8f);
  uint32_t r = select(em < 0x0400u, subnormal, normal);
  r = select(em >= 0x7c00u, inf_nan, r);
  return float_of(sign | r);
}

HVD_EXT_INLINE uint16_t bfloat16_from_float(float f) {
  const uint32_t x = bits_of(f);
  const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (x >> 16) | 0x0040u;
  return static_cast<uint16_t>(select((x & 0x7fffffffu) > 0x7f800000u, quiet_nan, rounded));
}

HVD_EXT_INLINE float float_from_bfloat16(uint16_t h) {
  return float_of(static_cast<uint32_t>(h) << 16);
}

// Storage type and float conversions per dtype tag.
template <DType T> struct Traits;
template <> struct Traits<DType::Float32> {
  using storage = float;
  static HVD_EXT_INLINE float load(float v) { return v; }
  static HVD_EXT_INLINE float store(float v) { return v; }
};
template <> struct Traits<DType::Float64> {
  using storage = double;
  static HVD_EXT_INLINE double load(double v) { return v; }
  static HVD_EXT_INLINE double store(double v) { return v; }
};
template <> struct Traits<DType::Float16> {
  using storage = uint16_t;
  static HVD_EXT_INLINE float load(uint16_t v) { return float_from_half(v); }
  static HVD_EXT_INLINE uint16_t store(float v) { return half_from_float(v); }
};
template <> struct Traits<DType::BFloat16> {
  using storage = uint16_t;
  static HVD_EXT_INLINE float load(uint16_t v) { return float_from_bfloat16(v); }
  static HVD_EXT_INLINE uint16_t store(float v) { return bfloat16_from_float(v); }
};

// Arithmetic in double when either side is double, float otherwise.
template <DType S, DType D>
using opmath_t = typename std::conditional<S == DType::Float64 || D == DType::Float64, double,
                                           float>::type;

}  // namespace
}  // namespace cpu
}  // namespace hvd_ext
