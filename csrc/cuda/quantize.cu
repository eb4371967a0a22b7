// CUDA quantization (kernels.h: quantize_cpu / dequantize_cpu's math): one block per chunk finds
// the chunk's absmax, then codes its elements; dequantization is element-wise.
#include <cuda_runtime.h>

#include <cstdint>

#include "../kernels.h"

namespace hvd_ext {
namespace {

constexpr int kQThreads = 256;

template <int BITS>
__global__ void __launch_bounds__(kQThreads)
quantize_kernel(const float* src, float* error, int64_t n, int64_t chunk, uint8_t* payload,
                float* scales) {
  constexpr float L = static_cast<float>((1 << (BITS - 1)) - 1);
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * chunk;
  auto value = [&](int64_t j) {  // src + error, zero past n
    const int64_t at = begin + j;
    return at < n ? src[at] + (error != nullptr ? error[at] : 0.f) : 0.f;
  };
  float amax = 0.f;
  for (int64_t j = threadIdx.x; j < chunk; j += kQThreads) amax = fmaxf(amax, fabsf(value(j)));
  __shared__ float smem[kQThreads];
  smem[threadIdx.x] = amax;
  __syncthreads();
  for (int s = kQThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) smem[threadIdx.x] = fmaxf(smem[threadIdx.x], smem[threadIdx.x + s]);
    __syncthreads();
  }
  const float scale = smem[0] / L;
  if (threadIdx.x == 0) scales[blockIdx.x] = scale;
  const float div = scale > 0.f ? scale : 1.f;
  // Each thread codes a pair of elements (the two nibbles of a byte at 4 bits).
  for (int64_t j = 2 * threadIdx.x; j < chunk; j += 2 * kQThreads) {
    uint8_t code[2];
    for (int k = 0; k < 2; ++k) {
      const float v = value(j + k);
      const float q = fminf(L, fmaxf(-L, nearbyintf(__fdiv_rn(v, div))));
      code[k] = static_cast<uint8_t>(static_cast<int>(q) + static_cast<int>(L) + 1);
      if (error != nullptr && begin + j + k < n) error[begin + j + k] = __fsub_rn(v, __fmul_rn(q, scale));
    }
    if (BITS == 8) {
      payload[begin + j] = code[0];
      payload[begin + j + 1] = code[1];
    } else {
      payload[(begin + j) / 2] = static_cast<uint8_t>(code[0] | (code[1] << 4));
    }
  }
}

template <int BITS>
__global__ void __launch_bounds__(kQThreads)
dequantize_kernel(const uint8_t* payload, const float* scales, int64_t chunk, float* out,
                  int64_t n, float scale, bool accumulate) {
  constexpr int L = (1 << (BITS - 1)) - 1;
  for (int64_t at = blockIdx.x * static_cast<int64_t>(kQThreads) + threadIdx.x; at < n;
       at += static_cast<int64_t>(gridDim.x) * kQThreads) {
    const int code = BITS == 8 ? payload[at] : (payload[at / 2] >> (4 * (at & 1))) & 15;
    const float v = __fmul_rn(scale, __fmul_rn(static_cast<float>(code - L - 1), scales[at / chunk]));
    out[at] = accumulate ? __fadd_rn(out[at], v) : v;
  }
}

}  // namespace

int quantize_cuda(const float* src, float* error, int64_t n, int bits, int64_t chunk,
                  int64_t chunks, uint8_t* payload, float* scales, void* stream) {
  if (chunks == 0) return 0;
  auto s = static_cast<cudaStream_t>(stream);
  if (bits == 8)
    quantize_kernel<8><<<chunks, kQThreads, 0, s>>>(src, error, n, chunk, payload, scales);
  else
    quantize_kernel<4><<<chunks, kQThreads, 0, s>>>(src, error, n, chunk, payload, scales);
  return static_cast<int>(cudaGetLastError());
}

int dequantize_cuda(const uint8_t* payload, const float* scales, int bits, int64_t chunk,
                    float* out, int64_t n, float scale, bool accumulate, void* stream) {
  if (n == 0) return 0;
  auto s = static_cast<cudaStream_t>(stream);
  const int64_t blocks = (n + kQThreads - 1) / kQThreads < 4096 ? (n + kQThreads - 1) / kQThreads
                                                                  : 4096;
  if (bits == 8)
    dequantize_kernel<8><<<blocks, kQThreads, 0, s>>>(payload, scales, chunk, out, n, scale,
                                                      accumulate);
  else
    dequantize_kernel<4><<<blocks, kQThreads, 0, s>>>(payload, scales, chunk, out, n, scale,
                                                      accumulate);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace hvd_ext
