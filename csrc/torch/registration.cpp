// The operators of horovod_ext (namespace hvd_ext): their schemas, the argument checks every
// backend shares, and the CPU and Meta (fake: checks and nothing else) implementations. The CUDA
// implementations register themselves from cuda_backend.cpp when the extension is built with CUDA.
#include <Python.h>
#include <torch/library.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <string>
#include <vector>

#include "../kernels.h"
#include "ops.h"

namespace hvd_ext {
namespace ops {

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

DType check_operands(const at::Tensor& flat, const char* flat_arg, at::TensorList tensors,
                     const char* list_arg, at::IntArrayRef offsets) {
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
    // Sizes may be symbolic (the Meta kernel under torch.compile): compare as SymInts.
    TORCH_CHECK_VALUE(offsets[i] >= 0 && (t.sym_numel() + offsets[i]).sym_le(flat.sym_numel())
                                             .expect_true(__FILE__, __LINE__),
                      "offsets[", i, "] = ", offsets[i], " with ", t.sym_numel(),
                      " elements does not fit in ", flat_arg, " of ", flat.sym_numel(), " elements");
  }
  return list_t;
}

DType check_same_dtype(const at::Tensor& flat, const char* flat_arg, at::TensorList params,
                       at::IntArrayRef offsets) {
  const DType t = check_operands(flat, flat_arg, params, "params", offsets);
  TORCH_CHECK_TYPE(params.empty() || params[0].scalar_type() == flat.scalar_type(), "params have ",
                   "dtype ", params.empty() ? flat.scalar_type() : params[0].scalar_type(),
                   " but ", flat_arg, " has dtype ", flat.scalar_type(), "; they must match");
  return t;
}

void check_like(const at::Tensor& flat, const char* flat_arg, const at::Tensor& other,
                const char* name) {
  TORCH_CHECK_TYPE(other.scalar_type() == flat.scalar_type(), name, " has dtype ",
                   other.scalar_type(), " but ", flat_arg, " has dtype ", flat.scalar_type());
  TORCH_CHECK_VALUE(other.is_contiguous() && other.device() == flat.device() &&
                        other.sym_numel().sym_eq(flat.sym_numel()).expect_true(__FILE__, __LINE__),
                    name, " must be a contiguous tensor like ", flat_arg, " (", flat.sym_numel(),
                    " elements on ", flat.device(), ")");
}

DType check_norm_operands(at::TensorList tensors, const at::Tensor& out) {
  TORCH_CHECK_VALUE(out.scalar_type() == at::kFloat && out.is_contiguous() &&
                        out.sym_numel().sym_ge(1).expect_true(__FILE__, __LINE__),
                    "out must be a contiguous float32 tensor with at least one element");
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
  }
  return t0;
}

void check_quantized(const at::Tensor& values, const char* values_arg, const at::Tensor* error,
                     const at::Tensor& payload, const at::Tensor& scales, int64_t bits,
                     int64_t chunk) {
  TORCH_CHECK_VALUE(bits == 8 || bits == 4, "bits must be 8 or 4; got ", bits);
  TORCH_CHECK_VALUE(chunk >= 2 && chunk <= 4096 && chunk % 2 == 0,
                    "chunk must be even, in [2, 4096]; got ", chunk);
  TORCH_CHECK_TYPE(values.scalar_type() == at::kFloat, values_arg, " must be float32; got ",
                   values.scalar_type());
  TORCH_CHECK_TYPE(payload.scalar_type() == at::kByte, "payload must be uint8; got ",
                   payload.scalar_type());
  TORCH_CHECK_TYPE(scales.scalar_type() == at::kFloat, "scales must be float32; got ",
                   scales.scalar_type());
  for (const at::Tensor* t : {&values, &payload, &scales, error}) {
    if (t == nullptr) continue;
    TORCH_CHECK_VALUE(t->is_contiguous() && t->device() == values.device(),
                      "quantize/dequantize operands must be contiguous, on one device (",
                      values_arg, " is on ", values.device(), ")");
  }
  const c10::SymInt padded = scales.sym_numel() * chunk;
  TORCH_CHECK_VALUE(values.sym_numel().sym_le(padded).expect_true(__FILE__, __LINE__),
                    values_arg, " has ", values.sym_numel(), " elements, more than the ",
                    padded, " of ", scales.sym_numel(), " chunks");
  TORCH_CHECK_VALUE(payload.sym_numel().sym_eq(padded * bits / 8).expect_true(__FILE__, __LINE__),
                    "payload must hold ", padded * bits / 8, " bytes; got ", payload.sym_numel());
  if (error != nullptr) {
    TORCH_CHECK_TYPE(error->scalar_type() == at::kFloat, "error must be float32");
    TORCH_CHECK_VALUE(error->sym_numel().sym_eq(values.sym_numel()).expect_true(__FILE__, __LINE__),
                      "error must have ", values_arg, "'s ", values.sym_numel(), " elements");
  }
}

int64_t check_topk(const at::Tensor& values, const char* values_arg, const at::Tensor* error,
                   const at::Tensor& scales, const at::Tensor& positions, const at::Tensor& codes,
                   int64_t bits, int64_t chunk, int64_t k) {
  TORCH_CHECK_VALUE(bits == 1 || bits == 2 || bits == 4 || bits == 8 || bits == 32,
                    "bits must be 1, 2, 4, 8 or 32; got ", bits);
  TORCH_CHECK_VALUE(chunk >= 1 && chunk <= 32768, "chunk must be in [1, 32768]; got ", chunk);
  TORCH_CHECK_VALUE(k >= 1 && k <= chunk, "k must be in [1, chunk = ", chunk, "]; got ", k);
  TORCH_CHECK_TYPE(values.scalar_type() == at::kFloat, values_arg, " must be float32; got ",
                   values.scalar_type());
  TORCH_CHECK_TYPE(scales.scalar_type() == at::kFloat, "scales must be float32; got ",
                   scales.scalar_type());
  TORCH_CHECK_TYPE(positions.scalar_type() == at::kShort, "positions must be int16; got ",
                   positions.scalar_type());
  TORCH_CHECK_TYPE(codes.scalar_type() == at::kByte, "codes must be uint8; got ",
                   codes.scalar_type());
  for (const at::Tensor* t : {&values, &scales, &positions, &codes, error}) {
    if (t == nullptr) continue;
    TORCH_CHECK_VALUE(t->is_contiguous() && t->device() == values.device(),
                      "topk operands must be contiguous, on one device (", values_arg, " is on ",
                      values.device(), ")");
  }
  TORCH_CHECK_VALUE(positions.sym_numel().sym_eq(positions.sym_numel() / k * k)
                        .expect_true(__FILE__, __LINE__),
                    "positions must hold k = ", k, " entries per chunk; got ",
                    positions.sym_numel());
  const c10::SymInt chunks = positions.sym_numel() / k;
  TORCH_CHECK_VALUE(values.sym_numel().sym_le(chunks * chunk).expect_true(__FILE__, __LINE__),
                    values_arg, " has ", values.sym_numel(), " elements, more than the ",
                    chunks * chunk, " of ", chunks, " chunks");
  TORCH_CHECK_VALUE(bits == 32 || scales.sym_numel().sym_eq(chunks).expect_true(__FILE__, __LINE__),
                    "scales must hold one scale per chunk (", chunks, "); got ", scales.sym_numel());
  TORCH_CHECK_VALUE(codes.sym_numel().sym_eq(chunks * topk_value_bytes(k, static_cast<int>(bits)))
                        .expect_true(__FILE__, __LINE__),
                    "codes must hold ", chunks * topk_value_bytes(k, static_cast<int>(bits)),
                    " bytes; got ", codes.sym_numel());
  if (error != nullptr) {
    TORCH_CHECK_TYPE(error->scalar_type() == at::kFloat, "error must be float32");
    TORCH_CHECK_VALUE(error->sym_numel().sym_eq(values.sym_numel()).expect_true(__FILE__, __LINE__),
                      "error must have ", values_arg, "'s ", values.sym_numel(), " elements");
  }
  return chunks.guard_int(__FILE__, __LINE__);
}

std::vector<Item> make_items(const at::Tensor& flat, at::TensorList tensors,
                             at::IntArrayRef offsets, bool flat_is_dst, const at::Tensor* aux) {
  std::vector<Item> items(tensors.size());
  char* base = static_cast<char*>(flat.data_ptr());
  char* aux_base = aux != nullptr ? static_cast<char*>(aux->data_ptr()) : nullptr;
  const int64_t esize = flat.element_size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    char* at_offset = base + offsets[i] * esize;
    void* t = tensors[i].data_ptr();
    items[i] = flat_is_dst ? Item{t, at_offset, tensors[i].numel()}
                           : Item{at_offset, t, tensors[i].numel()};
    if (aux_base != nullptr) items[i].aux = aux_base + offsets[i] * esize;
  }
  return items;
}

namespace {

// torch's intra-op thread pool (torch.get_num_threads() threads) over the items' chunks, split by
// elements, not by chunks: many small tensors (biases) next to large ones would otherwise leave
// one thread with most of the bytes. A chunk goes to the range its first element falls in.
constexpr int64_t kCpuChunkElems = 32768;

template <typename F>
void parallel_chunks(const std::vector<Chunk>& chunks, F fn) {
  std::vector<int64_t> starts(chunks.size() + 1, 0);
  for (size_t c = 0; c < chunks.size(); ++c)
    starts[c + 1] = starts[c] + (chunks[c].end - chunks[c].begin);
  at::parallel_for(0, starts.back(), kCpuChunkElems, [&](int64_t begin, int64_t end) {
    const auto first = std::lower_bound(starts.begin(), starts.end() - 1, begin) - starts.begin();
    const auto last = std::lower_bound(starts.begin(), starts.end() - 1, end) - starts.begin();
    if (first < last) fn(chunks.data(), first, last);
  });
}

std::vector<Chunk> cpu_chunks(const std::vector<Item>& items) {
  return make_chunks(items.data(), static_cast<int64_t>(items.size()), kCpuChunkElems);
}

struct CpuBackend {
  static constexpr bool kComputes = true;
  static void scale_copy(const at::Tensor&, const std::vector<Item>& items, DType src_t,
                         DType dst_t, double scale, bool accumulate) {
    parallel_chunks(cpu_chunks(items), [&](const Chunk* chunks, int64_t first, int64_t last) {
      scale_copy_cpu(items.data(), chunks, first, last, src_t, dst_t, scale, accumulate);
    });
  }
  static void ternary(Ternary op, const at::Tensor&, const std::vector<Item>& items, DType t,
                      double a, double b) {
    parallel_chunks(cpu_chunks(items), [&](const Chunk* chunks, int64_t first, int64_t last) {
      ternary_cpu(op, items.data(), chunks, first, last, t, a, b);
    });
  }
  static void sq_norm(const std::vector<Item>& items, DType t, const at::Tensor& out) {
    const std::vector<Chunk> chunks = cpu_chunks(items);
    std::vector<double> partial(chunks.size());
    parallel_chunks(chunks, [&](const Chunk* c, int64_t first, int64_t last) {
      sq_norm_partials_cpu(items.data(), c, first, last, t, partial.data() + first);
    });
    double total = 0.0;
    for (double p : partial) total += p;  // fixed order: same result for any thread count
    out.data_ptr<float>()[0] = static_cast<float>(total);
  }
  static void quantize(const at::Tensor& src, float* error, const at::Tensor& payload,
                       const at::Tensor& scales, int64_t bits, int64_t chunk) {
    at::parallel_for(0, scales.numel(), std::max<int64_t>(1, kCpuChunkElems / chunk),
                     [&](int64_t first, int64_t last) {
      quantize_cpu(src.data_ptr<float>(), error, src.numel(), static_cast<int>(bits), chunk,
                   payload.data_ptr<uint8_t>(), scales.data_ptr<float>(), first, last);
    });
  }
  static void dequantize(const at::Tensor& payload, const at::Tensor& scales,
                         const at::Tensor& out, int64_t bits, int64_t chunk, double scale,
                         bool accumulate) {
    at::parallel_for(0, scales.numel(), std::max<int64_t>(1, kCpuChunkElems / chunk),
                     [&](int64_t first, int64_t last) {
      dequantize_cpu(payload.data_ptr<uint8_t>(), scales.data_ptr<float>(), static_cast<int>(bits),
                     chunk, out.data_ptr<float>(), out.numel(), static_cast<float>(scale),
                     accumulate, first, last);
    });
  }
  static void topk_encode(const at::Tensor& src, float* error, const at::Tensor& scales,
                          const at::Tensor& positions, const at::Tensor& codes, int64_t bits,
                          int64_t chunk, int64_t k, int64_t chunks) {
    at::parallel_for(0, chunks, std::max<int64_t>(1, kCpuChunkElems / chunk),
                     [&](int64_t first, int64_t last) {
      topk_encode_cpu(src.data_ptr<float>(), error, src.numel(), chunk, k, static_cast<int>(bits),
                      scales.data_ptr<float>(), positions.data_ptr<int16_t>(),
                      codes.data_ptr<uint8_t>(), first, last);
    });
  }
  static void topk_decode(const at::Tensor& scales, const at::Tensor& positions,
                          const at::Tensor& codes, const at::Tensor& out, int64_t bits,
                          int64_t chunk, int64_t k, int64_t chunks, double scale,
                          bool accumulate) {
    at::parallel_for(0, chunks, std::max<int64_t>(1, kCpuChunkElems / chunk),
                     [&](int64_t first, int64_t last) {
      topk_decode_cpu(scales.data_ptr<float>(), positions.data_ptr<int16_t>(),
                      codes.data_ptr<uint8_t>(), static_cast<int>(bits), chunk, k,
                      out.data_ptr<float>(), out.numel(), static_cast<float>(scale), accumulate,
                      first, last);
    });
  }
};

// The fake implementation: the same checks, no data touched (meta and fake tensors).
struct MetaBackend {
  static constexpr bool kComputes = false;
};

std::string cpu_isa() { return hvd_ext::cpu_isa(); }

}  // namespace
}  // namespace ops
}  // namespace hvd_ext

TORCH_LIBRARY(hvd_ext, m) {
  // dst[offsets[i] : offsets[i] + srcs[i].numel()] = scale * srcs[i], cast to dst's dtype
  m.def("pack(Tensor[] srcs, Tensor(a!) dst, int[] offsets, float scale=1.0) -> ()");
  // dsts[i] = scale * src[offsets[i] : ...] (+= with accumulate), cast to the dsts' dtype
  m.def("unpack(Tensor src, int[] offsets, Tensor(a!)[] dsts, float scale=1.0, "
        "bool accumulate=False) -> ()");
  // grad[o : o + n] += c * g * g * (params[i] - snapshot[o : o + n]), o = offsets[i]
  m.def("dc_compensate(Tensor(a!) grad, Tensor[] params, Tensor snapshot, int[] offsets, "
        "float c) -> ()");
  // params[i] -= lam * (params[i] - flat[o : o + n])
  m.def("pull(Tensor(a!)[] params, Tensor flat, int[] offsets, float lam) -> ()");
  // params[i] -= alpha * (params[i] - c); center = c + alpha * (total - n * c), c the old center
  m.def("easgd(Tensor(a!)[] params, Tensor(b!) center, Tensor total, int[] offsets, float alpha, "
        "float n) -> ()");
  // out[0] = sum over tensors of the sum of squares, float32 (float64 accumulation on the CPU)
  m.def("sq_norm(Tensor[] tensors, Tensor(a!) out) -> ()");
  // chunks of src (+ error) to `bits` codes and a scale each; error = input - what was coded
  m.def("quantize(Tensor src, Tensor(a!)? error, Tensor(b!) payload, Tensor(c!) scales, int bits, "
        "int chunk) -> ()");
  // out (+)= scale * the decoded values (out.numel() of them)
  m.def("dequantize(Tensor payload, Tensor scales, Tensor(a!) out, int bits, int chunk, "
        "float scale=1.0, bool accumulate=False) -> ()");
  // per chunk the k entries of largest |src + error|: positions, values (codes of `bits` and a
  // scale, or float32 at 32 bits); error = input - what was sent
  m.def("topk_encode(Tensor src, Tensor(a!)? error, Tensor(b!) scales, Tensor(c!) positions, "
        "Tensor(d!) codes, int bits, int chunk, int k) -> ()");
  // out (+)= scale * the decoded sparse values (zero elsewhere without accumulate)
  m.def("topk_decode(Tensor scales, Tensor positions, Tensor codes, Tensor(a!) out, int bits, "
        "int chunk, int k, float scale=1.0, bool accumulate=False) -> ()");
  // the CPU instruction set the kernels run with (kernels.h)
  m.def("cpu_isa() -> str", &hvd_ext::ops::cpu_isa);
}

TORCH_LIBRARY_IMPL(hvd_ext, CPU, m) { hvd_ext::ops::register_ops<hvd_ext::ops::CpuBackend>(m); }
TORCH_LIBRARY_IMPL(hvd_ext, Meta, m) { hvd_ext::ops::register_ops<hvd_ext::ops::MetaBackend>(m); }

// `import horovod_ext._C` loads this library, and with it the registrations above.
PyMODINIT_FUNC PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "horovod_ext's operators (torch.ops.hvd_ext)",
                               -1, nullptr};
  return PyModule_Create(&module);
}
