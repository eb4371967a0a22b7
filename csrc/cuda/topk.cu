// CUDA top-k sparsification (kernels.h: topk_encode_cpu / topk_decode_cpu's math, the same
// selection and bits). One block per chunk: a radix select over the keys (topk_math.h), 8 bits a
// pass from the top, finds the k-th largest key T and how many entries equal to T to take; a
// block scan then writes the selected positions in ascending order, the chunk's scale, the error
// and the packed codes.
#include <cuda_runtime.h>

#include <cstdint>

#include "../kernels.h"
#include "../topk_math.h"

namespace hvd_ext {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__device__ float input(const float* src, const float* error, int64_t at, bool inside) {
  return inside ? __fadd_rn(src[at], error != nullptr ? error[at] : 0.f) : 0.f;
}

// This thread's count of set flags before it in the block, and the block's total (every thread
// of the block calls it).
__device__ int block_scan(bool flag, int* warp_sums, int* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const unsigned ballot = __ballot_sync(0xffffffffu, flag);
  if (lane == 0) warp_sums[warp] = __popc(ballot);
  __syncthreads();
  int before = 0, all = 0;
  for (int w = 0; w < kWarps; ++w) {
    before += w < warp ? warp_sums[w] : 0;
    all += warp_sums[w];
  }
  __syncthreads();
  *total = all;
  return before + __popc(ballot & ((1u << lane) - 1u));
}

__global__ void __launch_bounds__(kThreads)
topk_encode_kernel(const float* src, float* error, int64_t n, int64_t chunk, int64_t k, int bits,
                   float* scales, int16_t* positions, uint8_t* values, int64_t vbytes) {
  const int64_t c = blockIdx.x, begin = c * chunk;
  const int64_t m = n - begin < chunk ? (n - begin > 0 ? n - begin : 0) : chunk;
  __shared__ unsigned hist[256];
  __shared__ uint32_t prefix_shared;
  __shared__ int64_t remaining_shared;
  __shared__ int warp_sums[kWarps];
  __shared__ float reduce_max[kThreads];
  __shared__ double reduce_sum[kThreads];
  // Radix select: the prefix of T's key known so far (mask), and how many entries with that
  // prefix are still to take.
  uint32_t prefix = 0, mask = 0;
  int64_t remaining = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += kThreads) hist[i] = 0;
    __syncthreads();
    for (int64_t j = threadIdx.x; j < chunk; j += kThreads) {
      const uint32_t key = topk::key(input(src, error, begin + j, j < m));
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int64_t above = 0;
      int b = 255;
      for (; b > 0 && above + hist[b] < remaining; --b) above += hist[b];
      remaining_shared = remaining - above;
      prefix_shared = prefix | (static_cast<uint32_t>(b) << shift);
    }
    __syncthreads();
    remaining = remaining_shared;
    prefix = prefix_shared;
    mask |= 255u << shift;
    __syncthreads();
  }
  // Every key above T, and the first `remaining` keys equal to T, in position order.
  int64_t equal_seen = 0, taken = 0;
  float amax = 0.f;
  double asum = 0.0;
  for (int64_t tile = 0; tile < chunk; tile += kThreads) {
    const int64_t j = tile + threadIdx.x;
    const float v = input(src, error, begin + j, j < m);
    const uint32_t key = topk::key(v);
    const bool equal = j < chunk && key == prefix;
    int equals, picks;
    const int64_t equal_rank = equal_seen + block_scan(equal, warp_sums, &equals);
    const bool pick = j < chunk && (key > prefix || (equal && equal_rank < remaining));
    const int64_t slot = taken + block_scan(pick, warp_sums, &picks);
    if (pick) {
      positions[c * k + slot] = static_cast<int16_t>(j);
      amax = fmaxf(amax, fabsf(v));
      asum += fabsf(v);
    }
    equal_seen += equals;
    taken += picks;
  }
  reduce_max[threadIdx.x] = amax;
  reduce_sum[threadIdx.x] = asum;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      reduce_max[threadIdx.x] = fmaxf(reduce_max[threadIdx.x], reduce_max[threadIdx.x + s]);
      reduce_sum[threadIdx.x] += reduce_sum[threadIdx.x + s];
    }
    __syncthreads();
  }
  const float scale = bits == 1 ? static_cast<float>(reduce_sum[0] / static_cast<double>(k))
                                : __fdiv_rn(reduce_max[0], static_cast<float>(topk::levels(bits)));
  if (threadIdx.x == 0 && bits != 32) scales[c] = scale;
  // error = v everywhere first; the selected entries' values are read back from it below.
  if (error != nullptr)
    for (int64_t j = threadIdx.x; j < m; j += kThreads) error[begin + j] = input(src, error, begin + j, true);
  __syncthreads();
  auto value_at = [&](int64_t p) {
    return p < m ? (error != nullptr ? error[begin + p] : src[begin + p]) : 0.f;
  };
  const int16_t* pos = positions + c * k;
  if (bits == 32) {
    float* out = reinterpret_cast<float*>(values) + c * k;
    for (int64_t s = threadIdx.x; s < k; s += kThreads) {
      const int64_t p = pos[s];
      const float x = value_at(p);
      out[s] = x;
      if (error != nullptr && p < m) error[begin + p] = __fsub_rn(x, x);
    }
    return;
  }
  // A thread owns whole bytes of codes: 8 / bits entries each.
  const int per_byte = 8 / bits;
  for (int64_t byte = threadIdx.x; byte < vbytes; byte += kThreads) {
    uint32_t packed = 0;
    for (int i = 0; i < per_byte; ++i) {
      const int64_t s = byte * per_byte + i;
      if (s >= k) break;
      const int64_t p = pos[s];
      const float x = value_at(p);
      const uint32_t code = topk::code_of(x, scale, bits);
      packed |= code << (i * bits);
      if (error != nullptr && p < m)
        error[begin + p] = __fsub_rn(x, topk::value_of(code, scale, bits));
    }
    values[c * vbytes + byte] = static_cast<uint8_t>(packed);
  }
}

__global__ void __launch_bounds__(kThreads)
topk_decode_kernel(const float* scales, const int16_t* positions, const uint8_t* values, int bits,
                   int64_t chunk, int64_t k, int64_t vbytes, float* out, int64_t n, float scale,
                   bool accumulate) {
  const int64_t c = blockIdx.x, begin = c * chunk;
  const int64_t m = n - begin < chunk ? (n - begin > 0 ? n - begin : 0) : chunk;
  if (!accumulate) {
    for (int64_t j = threadIdx.x; j < m; j += kThreads) out[begin + j] = 0.f;
    __syncthreads();
  }
  for (int64_t s = threadIdx.x; s < k; s += kThreads) {
    const int64_t p = positions[c * k + s];
    if (p < 0 || p >= m) continue;
    const float x = bits == 32 ? reinterpret_cast<const float*>(values)[c * k + s]
                               : topk::value_of(topk::read_code(values + c * vbytes, s, bits),
                                                scales[c], bits);
    const float y = __fmul_rn(scale, x);
    out[begin + p] = accumulate ? __fadd_rn(out[begin + p], y) : y;
  }
}

}  // namespace

int topk_encode_cuda(const float* src, float* error, int64_t n, int64_t chunk, int64_t k,
                     int bits, int64_t chunks, float* scales, int16_t* positions,
                     uint8_t* values, void* stream) {
  if (chunks == 0) return 0;
  topk_encode_kernel<<<chunks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      src, error, n, chunk, k, bits, scales, positions, values, topk_value_bytes(k, bits));
  return static_cast<int>(cudaGetLastError());
}

int topk_decode_cuda(const float* scales, const int16_t* positions, const uint8_t* values,
                     int bits, int64_t chunk, int64_t k, int64_t chunks, float* out, int64_t n,
                     float scale, bool accumulate, void* stream) {
  if (chunks == 0) return 0;
  topk_decode_kernel<<<chunks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      scales, positions, values, bits, chunk, k, topk_value_bytes(k, bits), out, n, scale,
      accumulate);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace hvd_ext
