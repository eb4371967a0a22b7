// CPU kernels: one template per (source, destination) dtype pair, inner loops over plain arrays
// so the compiler vectorises the float and double cases.
#include "kernels.h"
#include "ternary_ops.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace hvd_ext {

static inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
static inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Branch-free (masks, no selects), so the compiler vectorises the conversion loops.
static inline uint32_t select(bool c, uint32_t a, uint32_t b) {
  const uint32_t m = 0u - static_cast<uint32_t>(c);
  return (a & m) | (b & ~m);
}

static inline uint16_t half_from_float(float f) {
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

static inline float float_from_half(uint16_t h) {
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

static inline uint16_t bfloat16_from_float(float f) {
  const uint32_t x = bits_of(f);
  const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (x >> 16) | 0x0040u;
  return static_cast<uint16_t>(select((x & 0x7fffffffu) > 0x7f800000u, quiet_nan, rounded));
}

static inline float float_from_bfloat16(uint16_t h) {
  return float_of(static_cast<uint32_t>(h) << 16);
}

// The exported conversions (C++ tests); the kernels use the inline ones above.
uint16_t float_to_half(float f) { return half_from_float(f); }
float half_to_float(uint16_t h) { return float_from_half(h); }
uint16_t float_to_bfloat16(float f) { return bfloat16_from_float(f); }
float bfloat16_to_float(uint16_t h) { return float_from_bfloat16(h); }

// Storage type and float conversions per dtype tag.
template <DType T> struct Traits;
template <> struct Traits<DType::Float32> {
  using storage = float;
  static float load(float v) { return v; }
  static float store(float v) { return v; }
};
template <> struct Traits<DType::Float64> {
  using storage = double;
  static double load(double v) { return v; }
  static double store(double v) { return v; }
};
template <> struct Traits<DType::Float16> {
  using storage = uint16_t;
  static float load(uint16_t v) { return float_from_half(v); }
  static uint16_t store(float v) { return half_from_float(v); }
};
template <> struct Traits<DType::BFloat16> {
  using storage = uint16_t;
  static float load(uint16_t v) { return float_from_bfloat16(v); }
  static uint16_t store(float v) { return bfloat16_from_float(v); }
};

// Arithmetic in double when either side is double, float otherwise.
template <DType S, DType D>
using opmath_t = typename std::conditional<S == DType::Float64 || D == DType::Float64, double,
                                           float>::type;

// The one CPU dtype dispatch: calls f(tag) with tag a std::integral_constant<DType, t>, so
// the callee instantiates its template for that dtype (two nested calls for a dtype pair).
template <typename F>
static void dispatch(DType t, const char* what, F f) {
  switch (t) {
    case DType::Float32: return f(std::integral_constant<DType, DType::Float32>());
    case DType::Float64: return f(std::integral_constant<DType, DType::Float64>());
    case DType::Float16: return f(std::integral_constant<DType, DType::Float16>());
    case DType::BFloat16: return f(std::integral_constant<DType, DType::BFloat16>());
  }
  throw std::invalid_argument(std::string(what) + ": unsupported dtype");
}

std::vector<Chunk> make_chunks(const Item* items, int64_t n_items, int64_t chunk_elems) {
  if (chunk_elems <= 0) throw std::invalid_argument("chunk_elems must be positive");
  std::vector<Chunk> chunks;
  for (int64_t i = 0; i < n_items; ++i)
    for (int64_t b = 0; b < items[i].numel; b += chunk_elems)
      chunks.push_back({static_cast<int32_t>(i), b, std::min(items[i].numel, b + chunk_elems)});
  return chunks;
}

template <DType S, DType D>
static void scale_copy_typed(const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                             double scale_d, bool accumulate) {
  using SS = typename Traits<S>::storage;
  using DS = typename Traits<D>::storage;
  using M = opmath_t<S, D>;
  const M scale = static_cast<M>(scale_d);
  for (int64_t c = first; c < last; ++c) {
    const Chunk& ch = chunks[c];
    const SS* __restrict__ src = static_cast<const SS*>(items[ch.item].src) + ch.begin;
    DS* __restrict__ dst = static_cast<DS*>(items[ch.item].dst) + ch.begin;
    const int64_t n = ch.end - ch.begin;
    if (accumulate) {
      for (int64_t j = 0; j < n; ++j)
        dst[j] = Traits<D>::store(static_cast<M>(Traits<D>::load(dst[j])) +
                                  scale * static_cast<M>(Traits<S>::load(src[j])));
    } else if (scale == M(1)) {
      for (int64_t j = 0; j < n; ++j) dst[j] = Traits<D>::store(static_cast<M>(Traits<S>::load(src[j])));
    } else {
      for (int64_t j = 0; j < n; ++j)
        dst[j] = Traits<D>::store(scale * static_cast<M>(Traits<S>::load(src[j])));
    }
  }
}

void scale_copy_cpu(const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                    DType src_t, DType dst_t, double scale, bool accumulate) {
  dispatch(src_t, "scale_copy source", [&](auto src) {
    dispatch(dst_t, "scale_copy destination", [&](auto dst) {
      scale_copy_typed<decltype(src)::value, decltype(dst)::value>(items, chunks, first, last,
                                                                   scale, accumulate);
    });
  });
}

template <Ternary OP, DType T>
static void ternary_typed(const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                          double a_d, double b_d) {
  using TS = typename Traits<T>::storage;
  using M = opmath_t<T, T>;
  const M a = static_cast<M>(a_d), b = static_cast<M>(b_d);
  for (int64_t k = first; k < last; ++k) {
    const Chunk& ch = chunks[k];
    const TS* __restrict__ s = static_cast<const TS*>(items[ch.item].src) + ch.begin;
    TS* __restrict__ d = static_cast<TS*>(items[ch.item].dst) + ch.begin;
    TS* __restrict__ x = kReadsAux<OP> ? static_cast<TS*>(items[ch.item].aux) + ch.begin
                                                 : nullptr;
    const int64_t n = ch.end - ch.begin;
    for (int64_t j = 0; j < n; ++j) {
      M dm = static_cast<M>(Traits<T>::load(d[j]));
      M xm = kReadsAux<OP> ? static_cast<M>(Traits<T>::load(x[j])) : M(0);
      ternary_apply<OP, M>(dm, static_cast<M>(Traits<T>::load(s[j])), xm, a, b);
      d[j] = Traits<T>::store(dm);
      if (kWritesAux<OP>) x[j] = Traits<T>::store(xm);
    }
  }
}

void ternary_cpu(Ternary op, const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                 DType t, double a, double b) {
  dispatch(t, "ternary", [&](auto tag) {
    constexpr DType T = decltype(tag)::value;
    switch (op) {
      case Ternary::DcCompensate: return ternary_typed<Ternary::DcCompensate, T>(items, chunks, first, last, a, b);
      case Ternary::Pull: return ternary_typed<Ternary::Pull, T>(items, chunks, first, last, a, b);
      case Ternary::Easgd: return ternary_typed<Ternary::Easgd, T>(items, chunks, first, last, a, b);
    }
    throw std::invalid_argument("ternary: unknown op");
  });
}

template <DType S>
static void sq_norm_typed(const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                          double* partial) {
  using SS = typename Traits<S>::storage;
  for (int64_t c = first; c < last; ++c) {
    const Chunk& ch = chunks[c];
    const SS* src = static_cast<const SS*>(items[ch.item].src) + ch.begin;
    const int64_t n = ch.end - ch.begin;
    // Four independent double accumulators: vectorisable and more accurate than one running sum.
    double acc[4] = {0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 4 <= n; j += 4)
      for (int k = 0; k < 4; ++k) {
        const double v = Traits<S>::load(src[j + k]);
        acc[k] += v * v;
      }
    for (; j < n; ++j) {
      const double v = Traits<S>::load(src[j]);
      acc[0] += v * v;
    }
    partial[c - first] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  }
}

void sq_norm_partials_cpu(const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                          DType src_t, double* partial) {
  dispatch(src_t, "sq_norm", [&](auto tag) {
    sq_norm_typed<decltype(tag)::value>(items, chunks, first, last, partial);
  });
}

}  // namespace hvd_ext
