// The formulas of the ternary kernels, one place for the CPU and the CUDA code.
#pragma once

#include "kernels.h"

#ifdef __CUDACC__
#define HVD_EXT_HD __host__ __device__
#else
#define HVD_EXT_HD __attribute__((always_inline))  // inlined into every instruction-set variant
#endif

namespace hvd_ext {

// d = dst, s = src, x = aux; a, b the op's scalars; M the arithmetic type.
template <Ternary OP, typename M>
HVD_EXT_HD inline void ternary_apply(M& d, M s, M& x, M a, M b) {
  if constexpr (OP == Ternary::DcCompensate) {
    d = d + a * d * d * (s - x);
  } else if constexpr (OP == Ternary::Pull) {
    d = d - a * (d - s);
  } else {  // Easgd: the worker and the center move toward each other, both from the old center
    const M c = x;
    d = d - a * (d - c);
    x = c + a * (s - b * c);
  }
}

template <Ternary OP>
constexpr bool kWritesAux = OP == Ternary::Easgd;
template <Ternary OP>
constexpr bool kReadsAux = OP != Ternary::Pull;

}  // namespace hvd_ext
