// The CUDA implementations of the hvd_ext operators (built only with CUDA): the shared bodies of
// ops.h with the CUDA kernels on the current stream of the operands' device.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../kernels.h"
#include "ops.h"

namespace hvd_ext {
namespace ops {
namespace {

void check_launch(int err, const char* kernel) {
  TORCH_CHECK(err == 0, kernel, " CUDA launch failed: ",
              cudaGetErrorString(static_cast<cudaError_t>(err)));
}

cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

struct CudaBackend {
  static constexpr bool kComputes = true;
  static void scale_copy(const at::Tensor& flat, const std::vector<Item>& items, DType src_t,
                         DType dst_t, double scale, bool accumulate) {
    const c10::cuda::CUDAGuard guard(flat.device());
    check_launch(scale_copy_cuda(items.data(), static_cast<int64_t>(items.size()), src_t, dst_t,
                                 static_cast<float>(scale), accumulate, stream()),
                 "scale_copy");
  }
  static void ternary(Ternary op, const at::Tensor& flat, const std::vector<Item>& items, DType t,
                      double a, double b) {
    const c10::cuda::CUDAGuard guard(flat.device());
    check_launch(ternary_cuda(op, items.data(), static_cast<int64_t>(items.size()), t,
                              static_cast<float>(a), static_cast<float>(b), stream()),
                 "ternary");
  }
  static void sq_norm(const std::vector<Item>& items, DType t, const at::Tensor& out) {
    const c10::cuda::CUDAGuard guard(out.device());
    const int64_t n = static_cast<int64_t>(items.size());
    at::Tensor ws = at::empty({std::max<int64_t>(1, sq_norm_cuda_workspace(items.data(), n))},
                              out.options());
    check_launch(sq_norm_cuda(items.data(), n, t, ws.data_ptr<float>(), out.data_ptr<float>(),
                              stream()),
                 "sq_norm");
  }
  static void quantize(const at::Tensor& src, float* error, const at::Tensor& payload,
                       const at::Tensor& scales, int64_t bits, int64_t chunk) {
    const c10::cuda::CUDAGuard guard(src.device());
    check_launch(quantize_cuda(src.data_ptr<float>(), error, src.numel(), static_cast<int>(bits),
                               chunk, scales.numel(), payload.data_ptr<uint8_t>(),
                               scales.data_ptr<float>(), stream()),
                 "quantize");
  }
  static void dequantize(const at::Tensor& payload, const at::Tensor& scales,
                         const at::Tensor& out, int64_t bits, int64_t chunk, double scale,
                         bool accumulate) {
    const c10::cuda::CUDAGuard guard(out.device());
    check_launch(dequantize_cuda(payload.data_ptr<uint8_t>(), scales.data_ptr<float>(),
                                 static_cast<int>(bits), chunk, out.data_ptr<float>(), out.numel(),
                                 static_cast<float>(scale), accumulate, stream()),
                 "dequantize");
  }
  static void topk_encode(const at::Tensor& src, float* error, const at::Tensor& scales,
                          const at::Tensor& positions, const at::Tensor& codes, int64_t bits,
                          int64_t chunk, int64_t k, int64_t chunks) {
    const c10::cuda::CUDAGuard guard(src.device());
    check_launch(topk_encode_cuda(src.data_ptr<float>(), error, src.numel(), chunk, k,
                                  static_cast<int>(bits), chunks, scales.data_ptr<float>(),
                                  positions.data_ptr<int16_t>(), codes.data_ptr<uint8_t>(),
                                  stream()),
                 "topk_encode");
  }
  static void topk_decode(const at::Tensor& scales, const at::Tensor& positions,
                          const at::Tensor& codes, const at::Tensor& out, int64_t bits,
                          int64_t chunk, int64_t k, int64_t chunks, double scale,
                          bool accumulate) {
    const c10::cuda::CUDAGuard guard(out.device());
    check_launch(topk_decode_cuda(scales.data_ptr<float>(), positions.data_ptr<int16_t>(),
                                  codes.data_ptr<uint8_t>(), static_cast<int>(bits), chunk, k,
                                  chunks, out.data_ptr<float>(), out.numel(),
                                  static_cast<float>(scale), accumulate, stream()),
                 "topk_decode");
  }
};

}  // namespace
}  // namespace ops
}  // namespace hvd_ext

TORCH_LIBRARY_IMPL(hvd_ext, CUDA, m) { hvd_ext::ops::register_ops<hvd_ext::ops::CudaBackend>(m); }
