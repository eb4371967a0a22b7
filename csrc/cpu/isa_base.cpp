// The CPU kernels for any CPU (the compiler's default target): no explicit vectors.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "../ternary_ops.h"
#include "convert.h"
#include "isa.h"

namespace hvd_ext {
namespace cpu {
namespace base {

struct Simd {
  static constexpr int kWidth = 0;
  template <typename T> static double sq_sum(const T*, int64_t, int64_t*) { return 0; }
};
#define HVD_EXT_ISA_NAME "base"
#include "typed_kernels.inc"
#undef HVD_EXT_ISA_NAME

}  // namespace base
}  // namespace cpu
}  // namespace hvd_ext
