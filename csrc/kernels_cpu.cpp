// The CPU entry points of kernels.h: the exported scalar conversions, the chunking, and the
// choice of instruction set (the widest this CPU has, once; HOROVOD_EXT_CPU_ISA=base|avx2|avx512
// asks for a narrower one).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu/convert.h"
#include "cpu/isa.h"
#include "kernels.h"

namespace hvd_ext {

uint16_t float_to_half(float f) { return cpu::half_from_float(f); }
float half_to_float(uint16_t h) { return cpu::float_from_half(h); }
uint16_t float_to_bfloat16(float f) { return cpu::bfloat16_from_float(f); }
float bfloat16_to_float(uint16_t h) { return cpu::float_from_bfloat16(h); }

std::vector<Chunk> make_chunks(const Item* items, int64_t n_items, int64_t chunk_elems) {
  if (chunk_elems <= 0) throw std::invalid_argument("chunk_elems must be positive");
  std::vector<Chunk> chunks;
  for (int64_t i = 0; i < n_items; ++i)
    for (int64_t b = 0; b < items[i].numel; b += chunk_elems)
      chunks.push_back({static_cast<int32_t>(i), b, std::min(items[i].numel, b + chunk_elems)});
  return chunks;
}

namespace {

// The kernel tables this CPU can run, narrowest first.
std::vector<const cpu::CpuKernels*> supported() {
  std::vector<const cpu::CpuKernels*> out = {&cpu::base::kernels};
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c")) {
    out.push_back(&cpu::avx2::kernels);
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
      out.push_back(&cpu::avx512::kernels);
  }
#endif
  return out;
}

const cpu::CpuKernels* find(const char* name) {
  for (const cpu::CpuKernels* k : supported())
    if (std::strcmp(k->name, name) == 0) return k;
  return nullptr;
}

const cpu::CpuKernels* initial() {
  const char* want = std::getenv("HOROVOD_EXT_CPU_ISA");
  if (want != nullptr && *want != '\0') {
    const cpu::CpuKernels* k = find(want);
    if (k == nullptr)
      throw std::invalid_argument(std::string("HOROVOD_EXT_CPU_ISA=") + want +
                                  ": not one of this CPU's instruction sets (" + cpu_isas() + ")");
    return k;
  }
  return supported().back();
}

const cpu::CpuKernels*& active() {
  static const cpu::CpuKernels* k = initial();
  return k;
}

}  // namespace

std::string cpu_isas() {
  std::string out;
  for (const cpu::CpuKernels* k : supported()) out += (out.empty() ? "" : ", ") + std::string(k->name);
  return out;
}

const char* cpu_isa() { return active()->name; }

void set_cpu_isa(const char* name) {
  const cpu::CpuKernels* k = find(name);
  if (k == nullptr)
    throw std::invalid_argument(std::string("cpu isa '") + name +
                                "' is not one of this CPU's instruction sets (" + cpu_isas() + ")");
  active() = k;
}

void scale_copy_cpu(const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                    DType src_t, DType dst_t, double scale, bool accumulate) {
  active()->scale_copy(items, chunks, first, last, src_t, dst_t, scale, accumulate);
}

void ternary_cpu(Ternary op, const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                 DType t, double a, double b) {
  active()->ternary(op, items, chunks, first, last, t, a, b);
}

void sq_norm_partials_cpu(const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                          DType src_t, double* partial) {
  active()->sq_norm_partials(items, chunks, first, last, src_t, partial);
}

}  // namespace hvd_ext

namespace hvd_ext {

void quantize_cpu(const float* src, float* error, int64_t n, int bits, int64_t chunk,
                  uint8_t* payload, float* scales, int64_t first, int64_t last) {
  if ((bits != 8 && bits != 4) || chunk <= 0 || chunk % 2 || chunk > 4096)
    throw std::invalid_argument("quantize: bits must be 8 or 4 and chunk even, in [2, 4096]");
  active()->quantize(src, error, n, bits, chunk, payload, scales, first, last);
}

void dequantize_cpu(const uint8_t* payload, const float* scales, int bits, int64_t chunk,
                    float* out, int64_t n, float scale, bool accumulate, int64_t first,
                    int64_t last) {
  if ((bits != 8 && bits != 4) || chunk <= 0 || chunk % 2 || chunk > 4096)
    throw std::invalid_argument("dequantize: bits must be 8 or 4 and chunk even, in [2, 4096]");
  active()->dequantize(payload, scales, bits, chunk, out, n, scale, accumulate, first, last);
}

}  // namespace hvd_ext
