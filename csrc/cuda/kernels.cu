// CUDA kernels: small functors over the shared chunk table (multi_tensor_apply.cuh).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <type_traits>

#include "../ternary_ops.h"
#include "multi_tensor_apply.cuh"

namespace hvd_ext {
namespace {

template <typename T> struct Cvt;
template <> struct Cvt<float> {
  __device__ static float load(float v) { return v; }
  __device__ static float store(float v) { return v; }
};
template <> struct Cvt<double> {
  __device__ static double load(double v) { return v; }
  __device__ static double store(double v) { return v; }
};
template <> struct Cvt<__half> {
  __device__ static float load(__half v) { return __half2float(v); }
  __device__ static __half store(float v) { return __float2half_rn(v); }
};
template <> struct Cvt<__nv_bfloat16> {
  __device__ static float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};

// Arithmetic in double when either side is double, in float otherwise (opmath).
template <typename S, typename D>
using opmath_t = typename std::conditional<std::is_same<S, double>::value ||
                                               std::is_same<D, double>::value,
                                           double, float>::type;

template <typename T> struct alignas(sizeof(T) * kIlp) Vec { T v[kIlp]; };

template <typename T>
__device__ bool vec_aligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % (sizeof(T) * kIlp) == 0;
}

template <typename S, typename D>
__global__ void __launch_bounds__(kThreads)
scale_copy_kernel(ChunkTable t, opmath_t<S, D> scale, bool accumulate) {
  using M = opmath_t<S, D>;
  const int slot = t.block_tensor[blockIdx.x];
  const int64_t begin = static_cast<int64_t>(t.block_chunk[blockIdx.x]) * kChunkElems;
  const int64_t n = min(t.numel[slot] - begin, kChunkElems);
  const S* src = static_cast<const S*>(t.src[slot]) + begin;
  D* dst = static_cast<D*>(t.dst[slot]) + begin;
  auto op = [&](S s, D d) -> D {
    const M v = scale * static_cast<M>(Cvt<S>::load(s));
    return Cvt<D>::store(accumulate ? static_cast<M>(Cvt<D>::load(d)) + v : v);
  };
  int64_t vec_end = 0;
  if (vec_aligned<S>(src) && vec_aligned<D>(dst)) {  // chunk starts keep base alignment
    vec_end = n / kIlp * kIlp;
    for (int64_t j = threadIdx.x * kIlp; j < vec_end; j += kThreads * kIlp) {
      const Vec<S> s = *reinterpret_cast<const Vec<S>*>(src + j);
      Vec<D> d;
      if (accumulate) d = *reinterpret_cast<const Vec<D>*>(dst + j);
#pragma unroll
      for (int k = 0; k < kIlp; ++k) d.v[k] = op(s.v[k], d.v[k]);
      *reinterpret_cast<Vec<D>*>(dst + j) = d;
    }
  }
  for (int64_t j = vec_end + threadIdx.x; j < n; j += kThreads)  // tail or misaligned
    dst[j] = op(src[j], accumulate ? dst[j] : D());
}

// The ternary updates (ternary_ops.h): d = dst, s = src, x = aux; one dtype.
template <Ternary OP, typename T>
__global__ void __launch_bounds__(kThreads)
ternary_kernel(ChunkTable t, opmath_t<T, T> a, opmath_t<T, T> b) {
  using M = opmath_t<T, T>;
  constexpr bool kReadX = kReadsAux<OP>;
  const int slot = t.block_tensor[blockIdx.x];
  const int64_t begin = static_cast<int64_t>(t.block_chunk[blockIdx.x]) * kChunkElems;
  const int64_t n = min(t.numel[slot] - begin, kChunkElems);
  const T* s = static_cast<const T*>(t.src[slot]) + begin;
  T* d = static_cast<T*>(t.dst[slot]) + begin;
  T* x = kReadX ? static_cast<T*>(t.aux[slot]) + begin : nullptr;
  auto op = [&](T& dv, T sv, T& xv) {
    M dm = static_cast<M>(Cvt<T>::load(dv));
    M xm = kReadX ? static_cast<M>(Cvt<T>::load(xv)) : M(0);
    ternary_apply<OP, M>(dm, static_cast<M>(Cvt<T>::load(sv)), xm, a, b);
    dv = Cvt<T>::store(dm);
    if (kWritesAux<OP>) xv = Cvt<T>::store(xm);
  };
  int64_t vec_end = 0;
  if (vec_aligned<T>(s) && vec_aligned<T>(d) && (!kReadX || vec_aligned<T>(x))) {
    vec_end = n / kIlp * kIlp;
    for (int64_t j = threadIdx.x * kIlp; j < vec_end; j += kThreads * kIlp) {
      const Vec<T> sv = *reinterpret_cast<const Vec<T>*>(s + j);
      Vec<T> dv = *reinterpret_cast<const Vec<T>*>(d + j);
      Vec<T> xv;
      if (kReadX) xv = *reinterpret_cast<const Vec<T>*>(x + j);
#pragma unroll
      for (int k = 0; k < kIlp; ++k) op(dv.v[k], sv.v[k], xv.v[k]);
      *reinterpret_cast<Vec<T>*>(d + j) = dv;
      if (kWritesAux<OP>) *reinterpret_cast<Vec<T>*>(x + j) = xv;
    }
  }
  for (int64_t j = vec_end + threadIdx.x; j < n; j += kThreads) {
    T xv = kReadX ? x[j] : T();
    op(d[j], s[j], xv);
    if (kWritesAux<OP>) x[j] = xv;
  }
}

template <typename S>
__global__ void __launch_bounds__(kThreads)
sq_norm_kernel(ChunkTable t, float* partial, int64_t first_block) {
  const int slot = t.block_tensor[blockIdx.x];
  const int64_t begin = static_cast<int64_t>(t.block_chunk[blockIdx.x]) * kChunkElems;
  const int64_t n = min(t.numel[slot] - begin, kChunkElems);
  const S* src = static_cast<const S*>(t.src[slot]) + begin;
  float acc = 0.f;
  int64_t vec_end = 0;
  if (vec_aligned<S>(src)) {
    vec_end = n / kIlp * kIlp;
    for (int64_t j = threadIdx.x * kIlp; j < vec_end; j += kThreads * kIlp) {
      const Vec<S> s = *reinterpret_cast<const Vec<S>*>(src + j);
#pragma unroll
      for (int k = 0; k < kIlp; ++k) {
        const float v = static_cast<float>(Cvt<S>::load(s.v[k]));
        acc += v * v;
      }
    }
  }
  for (int64_t j = vec_end + threadIdx.x; j < n; j += kThreads) {
    const float v = static_cast<float>(Cvt<S>::load(src[j]));
    acc += v * v;
  }
  __shared__ float smem[kThreads];
  smem[threadIdx.x] = acc;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) smem[threadIdx.x] += smem[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[first_block + blockIdx.x] = smem[0];
}

// Second pass of the norm: one block sums the per-chunk partials (writes 0 when there are none).
__global__ void __launch_bounds__(kThreads) sum_partials_kernel(const float* partial, int64_t n,
                                                                float* out) {
  __shared__ double smem[kThreads];
  double acc = 0.0;
  for (int64_t j = threadIdx.x; j < n; j += kThreads) acc += partial[j];
  smem[threadIdx.x] = acc;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) smem[threadIdx.x] += smem[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[0] = static_cast<float>(smem[0]);
}

template <typename F>
int dispatch(DType t, F f) {
  switch (t) {
    case DType::Float32: return f(float());
    case DType::Float64: return f(double());
    case DType::Float16: return f(__half());
    case DType::BFloat16: return f(__nv_bfloat16());
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

}  // namespace

int scale_copy_cuda(const Item* items, int64_t n_items, DType src_t, DType dst_t, float scale,
                    bool accumulate, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  return dispatch(src_t, [&](auto src_tag) {
    return dispatch(dst_t, [&](auto dst_tag) {
      using S = decltype(src_tag);
      using D = decltype(dst_tag);
      return multi_tensor_apply(items, n_items, [&](const ChunkTable& t, int nb, int64_t) {
        scale_copy_kernel<S, D><<<nb, kThreads, 0, s>>>(t, static_cast<opmath_t<S, D>>(scale),
                                                        accumulate);
        return static_cast<int>(cudaGetLastError());
      });
    });
  });
}

template <Ternary OP>
static int ternary_launch(const Item* items, int64_t n_items, DType t, float a, float b,
                          cudaStream_t s) {
  return dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    using M = opmath_t<T, T>;
    return multi_tensor_apply(items, n_items, [&](const ChunkTable& table, int nb, int64_t) {
      ternary_kernel<OP, T><<<nb, kThreads, 0, s>>>(table, static_cast<M>(a), static_cast<M>(b));
      return static_cast<int>(cudaGetLastError());
    });
  });
}

int ternary_cuda(Ternary op, const Item* items, int64_t n_items, DType t, float a, float b,
                 void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  switch (op) {
    case Ternary::DcCompensate: return ternary_launch<Ternary::DcCompensate>(items, n_items, t, a, b, s);
    case Ternary::Pull: return ternary_launch<Ternary::Pull>(items, n_items, t, a, b, s);
    case Ternary::Easgd: return ternary_launch<Ternary::Easgd>(items, n_items, t, a, b, s);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

int64_t sq_norm_cuda_workspace(const Item* items, int64_t n_items) {
  return count_blocks(items, n_items);
}

int sq_norm_cuda(const Item* items, int64_t n_items, DType src_t, float* workspace, float* out,
                 void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  int err = dispatch(src_t, [&](auto src_tag) {
    using S = decltype(src_tag);
    return multi_tensor_apply(items, n_items, [&](const ChunkTable& t, int nb, int64_t first) {
      sq_norm_kernel<S><<<nb, kThreads, 0, s>>>(t, workspace, first);
      return static_cast<int>(cudaGetLastError());
    });
  });
  if (err) return err;
  sum_partials_kernel<<<1, kThreads, 0, s>>>(workspace, count_blocks(items, n_items), out);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace hvd_ext
