// Binding layer: turns torch tensors into kernel arguments, checks them, picks CPU or CUDA.
// Every user error raises ValueError/TypeError naming the argument and the index at fault.
#include <torch/extension.h>

#include <ATen/Parallel.h>
#ifdef HVD_EXT_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <algorithm>
#include <vector>

#include "../csrc/kernels.h"

namespace hvd_ext {
namespace {

constexpr int64_t kCpuChunkElems = 32768;  // work unit of at::parallel_for

// The one CPU driver of every kernel: the items' chunks, ranges of which go to torch's thread
// pool as fn(chunks, first, last).
std::vector<Chunk> cpu_chunks(const std::vector<Item>& items) {
  return make_chunks(items.data(), static_cast<int64_t>(items.size()), kCpuChunkElems);
}

template <typename F>
void parallel_chunks(const std::vector<Chunk>& chunks, F fn) {
  at::parallel_for(0, static_cast<int64_t>(chunks.size()), 1,
                   [&](int64_t first, int64_t last) { fn(chunks.data(), first, last); });
}

DType to_dtype(const at::Tensor& t, const char* arg) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::Float32;
    case at::kDouble: return DType::Float64;
    case at::kHalf: return DType::Float16;
    case at::kBFloat16: return DType::BFloat16;
    default:
      TORCH_CHECK_TYPE(false, arg, " has dtype ", t.scalar_type(),
                       "; supported: float32, float64, float16, bfloat16");
  }
}

// Checks a list of per-tensor operands against the flat buffer: same device, contiguous, one
// dtype for the whole list, each [offset, offset + numel) inside the flat buffer.
DType check_operands(const at::Tensor& flat, const char* flat_arg,
                     const std::vector<at::Tensor>& tensors, const char* list_arg,
                     const std::vector<int64_t>& offsets) {
  TORCH_CHECK_VALUE(flat.is_contiguous(), flat_arg, " must be contiguous");
  TORCH_CHECK_VALUE(tensors.size() == offsets.size(), list_arg, " has ", tensors.size(),
                    " tensors but offsets has ", offsets.size(), " entries");
  to_dtype(flat, flat_arg);
  DType list_t = DType::Float32;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    TORCH_CHECK_VALUE(t.device() == flat.device(), list_arg, "[", i, "] is on ", t.device(),
                      " but ", flat_arg, " is on ", flat.device());
    TORCH_CHECK_VALUE(t.is_contiguous(), list_arg, "[", i, "] is not contiguous");
    const DType ti = to_dtype(t, list_arg);
    TORCH_CHECK_TYPE(i == 0 || ti == list_t, list_arg, "[", i, "] has dtype ", t.scalar_type(),
                     " but ", list_arg, "[0] has dtype ", tensors[0].scalar_type(),
                     "; one call takes one dtype");
    list_t = ti;
    TORCH_CHECK_VALUE(offsets[i] >= 0 && offsets[i] + t.numel() <= flat.numel(), "offsets[", i,
                      "] = ", offsets[i], " with ", t.numel(), " elements does not fit in ",
                      flat_arg, " of ", flat.numel(), " elements");
  }
  return list_t;
}

#ifdef HVD_EXT_WITH_CUDA
void check_launch(int err, const char* kernel) {
  TORCH_CHECK(err == 0, kernel, " CUDA launch failed: ",
              cudaGetErrorString(static_cast<cudaError_t>(err)));
}
#endif

[[noreturn]] void fail_no_cuda() {
  TORCH_CHECK_VALUE(false, "horovod_ext._C was built without CUDA; got a CUDA tensor");
  throw;  // unreachable: TORCH_CHECK_VALUE(false, ...) always throws
}

std::vector<Item> make_items(const at::Tensor& flat, const std::vector<at::Tensor>& tensors,
                             const std::vector<int64_t>& offsets, bool flat_is_dst) {
  std::vector<Item> items(tensors.size());
  char* base = static_cast<char*>(flat.data_ptr());
  for (size_t i = 0; i < tensors.size(); ++i) {
    char* at_offset = base + offsets[i] * flat.element_size();
    void* t = tensors[i].data_ptr();
    items[i] = flat_is_dst ? Item{t, at_offset, tensors[i].numel()}
                           : Item{at_offset, t, tensors[i].numel()};
  }
  return items;
}

void run_scale_copy(const at::Tensor& flat, const std::vector<Item>& items, DType src_t,
                    DType dst_t, double scale, bool accumulate) {
  if (flat.is_cuda()) {
#ifdef HVD_EXT_WITH_CUDA
    const c10::cuda::CUDAGuard guard(flat.device());
    check_launch(scale_copy_cuda(items.data(), static_cast<int64_t>(items.size()), src_t, dst_t,
                                 static_cast<float>(scale), accumulate,
                                 at::cuda::getCurrentCUDAStream().stream()),
                 "scale_copy");
    return;
#else
    fail_no_cuda();
#endif
  }
  TORCH_CHECK_VALUE(flat.is_cpu(), "unsupported device ", flat.device());
  parallel_chunks(cpu_chunks(items), [&](const Chunk* chunks, int64_t first, int64_t last) {
    scale_copy_cpu(items.data(), chunks, first, last, src_t, dst_t, scale, accumulate);
  });
}

// Packs srcs into dst at element offsets: dst[offsets[i] : offsets[i] + srcs[i].numel()] =
// scale * srcs[i], cast to dst's dtype.
void pack(const std::vector<at::Tensor>& srcs, at::Tensor& dst, const std::vector<int64_t>& offsets,
          double scale) {
  const DType src_t = check_operands(dst, "dst", srcs, "srcs", offsets);
  run_scale_copy(dst, make_items(dst, srcs, offsets, /*flat_is_dst=*/true), src_t,
                 to_dtype(dst, "dst"), scale, false);
}

// Unpacks src into dsts: dsts[i] (+)= scale * src[offsets[i] : ...], cast to dsts' dtype.
void unpack(const at::Tensor& src, const std::vector<int64_t>& offsets,
            std::vector<at::Tensor>& dsts, double scale, bool accumulate) {
  const DType dst_t = check_operands(src, "src", dsts, "dsts", offsets);
  run_scale_copy(src, make_items(src, dsts, offsets, /*flat_is_dst=*/false), to_dtype(src, "src"),
                 dst_t, scale, accumulate);
}

void run_ternary(Ternary op, const at::Tensor& flat, const std::vector<Item>& items, DType t,
                 double a, double b) {
  if (flat.is_cuda()) {
#ifdef HVD_EXT_WITH_CUDA
    const c10::cuda::CUDAGuard guard(flat.device());
    check_launch(ternary_cuda(op, items.data(), static_cast<int64_t>(items.size()), t,
                              static_cast<float>(a), static_cast<float>(b),
                              at::cuda::getCurrentCUDAStream().stream()),
                 "ternary");
    return;
#else
    fail_no_cuda();
#endif
  }
  parallel_chunks(cpu_chunks(items), [&](const Chunk* chunks, int64_t first, int64_t last) {
    ternary_cpu(op, items.data(), chunks, first, last, t, a, b);
  });
}

// Checks a second flat buffer (`name`) against the first: same dtype, size, device, contiguous;
// returns the address of element offsets[i] of it for every i.
std::vector<void*> flat_slices(const at::Tensor& flat, const char* flat_arg, const at::Tensor& other,
                               const char* name, const std::vector<int64_t>& offsets) {
  TORCH_CHECK_TYPE(other.scalar_type() == flat.scalar_type(), name, " has dtype ",
                   other.scalar_type(), " but ", flat_arg, " has dtype ", flat.scalar_type());
  TORCH_CHECK_VALUE(other.is_contiguous() && other.numel() == flat.numel() &&
                        other.device() == flat.device(),
                    name, " must be a contiguous tensor like ", flat_arg, " (", flat.numel(),
                    " elements on ", flat.device(), ")");
  std::vector<void*> out(offsets.size());
  for (size_t i = 0; i < offsets.size(); ++i)
    out[i] = static_cast<char*>(other.data_ptr()) + offsets[i] * other.element_size();
  return out;
}

DType check_same_dtype(const at::Tensor& flat, const char* flat_arg,
                       const std::vector<at::Tensor>& params, const std::vector<int64_t>& offsets) {
  const DType t = check_operands(flat, flat_arg, params, "params", offsets);
  TORCH_CHECK_TYPE(params.empty() || params[0].scalar_type() == flat.scalar_type(), "params have ",
                   "dtype ", params.empty() ? flat.scalar_type() : params[0].scalar_type(),
                   " but ", flat_arg, " has dtype ", flat.scalar_type(), "; they must match");
  return t;
}

// Delay compensation, in place on grad: grad[o:o+n] += c * g * g * (params[i] - snapshot[o:o+n])
// with o = offsets[i]; grad and snapshot are flat buffers of the parameters' dtype.
void dc_compensate(at::Tensor& grad, const std::vector<at::Tensor>& params,
                   const at::Tensor& snapshot, const std::vector<int64_t>& offsets, double c) {
  const DType t = check_same_dtype(grad, "grad", params, offsets);
  const std::vector<void*> snap = flat_slices(grad, "grad", snapshot, "snapshot", offsets);
  std::vector<Item> items = make_items(grad, params, offsets, /*flat_is_dst=*/true);
  for (size_t i = 0; i < items.size(); ++i) items[i].aux = snap[i];  // src = params, dst = grad
  run_ternary(Ternary::DcCompensate, grad, items, t, c, 0.0);
}

// Pull toward a flat buffer: params[i] -= lam * (params[i] - flat[o:o+n]), one pass.
void pull(std::vector<at::Tensor>& params, const at::Tensor& flat,
          const std::vector<int64_t>& offsets, double lam) {
  const DType t = check_same_dtype(flat, "flat", params, offsets);
  run_ternary(Ternary::Pull, flat, make_items(flat, params, offsets, /*flat_is_dst=*/false), t,
              lam, 0.0);
}

// EASGD, worker and center in one pass, both from the old center c:
//   params[i] -= alpha * (params[i] - c);  center = c + alpha * (total - n * c)
// with center and total (the sum of all workers' parameters) flat buffers.
void easgd(std::vector<at::Tensor>& params, at::Tensor& center, const at::Tensor& total,
           const std::vector<int64_t>& offsets, double alpha, double n) {
  const DType t = check_same_dtype(total, "total", params, offsets);
  const std::vector<void*> c = flat_slices(total, "total", center, "center", offsets);
  std::vector<Item> items = make_items(total, params, offsets, /*flat_is_dst=*/false);
  for (size_t i = 0; i < items.size(); ++i) items[i].aux = c[i];  // src = total, dst = params
  run_ternary(Ternary::Easgd, total, items, t, alpha, n);
}

// out[0] = sum over tensors of the sum of squares (float32 result, computed in float64 on CPU).
void sq_norm(const std::vector<at::Tensor>& tensors, at::Tensor& out) {
  TORCH_CHECK_VALUE(out.scalar_type() == at::kFloat && out.numel() >= 1 && out.is_contiguous(),
                    "out must be a contiguous float32 tensor with at least one element");
  std::vector<Item> items(tensors.size());
  DType t0 = DType::Float32;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    TORCH_CHECK_VALUE(t.device() == out.device(), "tensors[", i, "] is on ", t.device(),
                      " but out is on ", out.device());
    TORCH_CHECK_VALUE(t.is_contiguous(), "tensors[", i, "] is not contiguous");
    const DType ti = to_dtype(t, "tensors");
    TORCH_CHECK_TYPE(i == 0 || ti == t0, "tensors[", i, "] has dtype ", t.scalar_type(),
                     " but tensors[0] has dtype ", tensors[0].scalar_type());
    t0 = ti;
    items[i] = Item{t.data_ptr(), nullptr, t.numel()};
  }
  if (out.is_cuda()) {
#ifdef HVD_EXT_WITH_CUDA
    const c10::cuda::CUDAGuard guard(out.device());
    at::Tensor ws = at::empty({std::max<int64_t>(1, sq_norm_cuda_workspace(items.data(), items.size()))},
                              out.options());
    check_launch(sq_norm_cuda(items.data(), static_cast<int64_t>(items.size()), t0,
                              ws.data_ptr<float>(), out.data_ptr<float>(),
                              at::cuda::getCurrentCUDAStream().stream()),
                 "sq_norm");
    return;
#else
    fail_no_cuda();
#endif
  }
  const std::vector<Chunk> chunks = cpu_chunks(items);
  std::vector<double> partial(chunks.size());
  parallel_chunks(chunks, [&](const Chunk* c, int64_t first, int64_t last) {
    sq_norm_partials_cpu(items.data(), c, first, last, t0, partial.data() + first);
  });
  double total = 0.0;
  for (double p : partial) total += p;  // fixed order: same result for any thread count
  out.data_ptr<float>()[0] = static_cast<float>(total);
}

}  // namespace
}  // namespace hvd_ext

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "horovod_ext kernels: fused pack/unpack with scale and cast, multi-tensor norm";
  m.def("pack", &hvd_ext::pack, "dst[offsets[i]:...] = scale * srcs[i] (cast to dst dtype)",
        py::arg("srcs"), py::arg("dst"), py::arg("offsets"), py::arg("scale") = 1.0);
  m.def("unpack", &hvd_ext::unpack, "dsts[i] (+)= scale * src[offsets[i]:...] (cast to dsts dtype)",
        py::arg("src"), py::arg("offsets"), py::arg("dsts"), py::arg("scale") = 1.0,
        py::arg("accumulate") = false);
  m.def("dc_compensate", &hvd_ext::dc_compensate,
        "grad += c * grad * grad * (params - snapshot), in place, fused over all params",
        py::arg("grad"), py::arg("params"), py::arg("snapshot"), py::arg("offsets"), py::arg("c"));
  m.def("pull", &hvd_ext::pull, "params -= lam * (params - flat[offsets...]), fused",
        py::arg("params"), py::arg("flat"), py::arg("offsets"), py::arg("lam"));
  m.def("easgd", &hvd_ext::easgd,
        "params -= alpha * (params - center); center += alpha * (total - n * center), fused",
        py::arg("params"), py::arg("center"), py::arg("total"), py::arg("offsets"),
        py::arg("alpha"), py::arg("n"));
  m.def("sq_norm", &hvd_ext::sq_norm, "out[0] = sum_i |tensors[i]|^2", py::arg("tensors"),
        py::arg("out"));
#ifdef HVD_EXT_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
