// The CPU kernels as a table of entry points, one table per instruction set (isa_*.cpp). The
// public functions of kernels.h call the table of the widest set this CPU has, chosen once at
// run time (kernels_cpu.cpp).
#pragma once

#include "../kernels.h"

namespace hvd_ext {
namespace cpu {

struct CpuKernels {
  const char* name;
  void (*scale_copy)(const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                     DType src_t, DType dst_t, double scale, bool accumulate);
  void (*ternary)(Ternary op, const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                  DType t, double a, double b);
  void (*sq_norm_partials)(const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                           DType src_t, double* partial);
  void (*quantize)(const float* src, float* error, int64_t n, int bits, int64_t chunk,
                   uint8_t* payload, float* scales, int64_t first, int64_t last);
  void (*dequantize)(const uint8_t* payload, const float* scales, int bits, int64_t chunk,
                     float* out, int64_t n, float scale, bool accumulate, int64_t first,
                     int64_t last);
};

namespace base { extern const CpuKernels kernels; }    // any CPU: the compiler's default target
#if defined(__x86_64__)
namespace avx2 { extern const CpuKernels kernels; }    // AVX2 + FMA + F16C
namespace avx512 { extern const CpuKernels kernels; }  // AVX-512 F/BW/VL + the above
#endif

}  // namespace cpu
}  // namespace hvd_ext
