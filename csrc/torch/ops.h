// The operators' bodies, once for every device: argument checks (ValueError/TypeError naming the
// argument and the index at fault), the kernels' items, then the backend's kernel. A backend B
// provides
//   kComputes                       false for Meta: checks only (the fake implementation)
//   scale_copy(flat, items, src_t, dst_t, scale, accumulate)
//   ternary(op, flat, items, t, a, b)
//   sq_norm(items, t, out)          out[0] = the sum of squares, float32
//   quantize(src, error, payload, scales, bits, chunk), dequantize(payload, scales, out, bits,
//                                    chunk, scale, accumulate)    kernels.h's, float32
//   topk_encode(src, error, scales, positions, codes, bits, chunk, k, chunks),
//   topk_decode(scales, positions, codes, out, bits, chunk, k, chunks, scale, accumulate)
// register_ops<B>(m) registers every operator for one dispatch key; the dispatcher picks the key
// from the tensors' devices (registration.cpp: CPU and Meta; cuda_backend.cpp: CUDA).
#pragma once

#include <torch/library.h>

#include <optional>
#include <vector>

#include "../kernels.h"

namespace hvd_ext {
namespace ops {

DType to_dtype(const at::Tensor& t, const char* arg);

// A list of per-tensor operands against the flat buffer: same device, contiguous, one dtype for
// the whole list, each [offset, offset + numel) inside the flat buffer. Returns the list's dtype.
DType check_operands(const at::Tensor& flat, const char* flat_arg, at::TensorList tensors,
                     const char* list_arg, at::IntArrayRef offsets);
// As check_operands, and the list's dtype must be the flat buffer's.
DType check_same_dtype(const at::Tensor& flat, const char* flat_arg, at::TensorList params,
                       at::IntArrayRef offsets);
// A second flat buffer like the first: same dtype, size, device, contiguous.
void check_like(const at::Tensor& flat, const char* flat_arg, const at::Tensor& other,
                const char* name);
// The sq_norm operands: out a contiguous float32 with an element; tensors contiguous, on out's
// device, one dtype (returned).
DType check_norm_operands(at::TensorList tensors, const at::Tensor& out);

// The quantize/dequantize operands: float32 values, uint8 payload holding scales.numel() chunks
// of `chunk` elements at `bits` each, float32 scales, all contiguous on one device; `values`
// fits in the chunks. error (optional) is like values.
void check_quantized(const at::Tensor& values, const char* values_arg, const at::Tensor* error,
                     const at::Tensor& payload, const at::Tensor& scales, int64_t bits,
                     int64_t chunk);

// The topk_encode/topk_decode operands (kernels.h): `values` float32 (encode: src, decode: out),
// scales float32 with one element per chunk (none needed at 32 bits), positions int16 with k per
// chunk, codes uint8 with topk_value_bytes(k, bits) per chunk, all contiguous on one device;
// values fits in the chunks. Returns the number of chunks.
int64_t check_topk(const at::Tensor& values, const char* values_arg, const at::Tensor* error,
                   const at::Tensor& scales, const at::Tensor& positions, const at::Tensor& codes,
                   int64_t bits, int64_t chunk, int64_t k);

// Item i moves tensors[i] to flat[offsets[i]:] (flat_is_dst) or back; aux (when given) is the
// same offset of a second flat buffer.
std::vector<Item> make_items(const at::Tensor& flat, at::TensorList tensors,
                             at::IntArrayRef offsets, bool flat_is_dst,
                             const at::Tensor* aux = nullptr);

template <class B>
void pack(at::TensorList srcs, const at::Tensor& dst, at::IntArrayRef offsets, double scale) {
  const DType src_t = check_operands(dst, "dst", srcs, "srcs", offsets);
  if constexpr (B::kComputes)
    B::scale_copy(dst, make_items(dst, srcs, offsets, true), src_t, to_dtype(dst, "dst"), scale,
                  false);
}

template <class B>
void unpack(const at::Tensor& src, at::IntArrayRef offsets, at::TensorList dsts, double scale,
            bool accumulate) {
  const DType dst_t = check_operands(src, "src", dsts, "dsts", offsets);
  if constexpr (B::kComputes)
    B::scale_copy(src, make_items(src, dsts, offsets, false), to_dtype(src, "src"), dst_t, scale,
                  accumulate);
}

template <class B>
void dc_compensate(const at::Tensor& grad, at::TensorList params, const at::Tensor& snapshot,
                   at::IntArrayRef offsets, double c) {
  const DType t = check_same_dtype(grad, "grad", params, offsets);
  check_like(grad, "grad", snapshot, "snapshot");
  // src = params, dst = grad, aux = snapshot
  if constexpr (B::kComputes)
    B::ternary(Ternary::DcCompensate, grad, make_items(grad, params, offsets, true, &snapshot), t,
               c, 0.0);
}

template <class B>
void pull(at::TensorList params, const at::Tensor& flat, at::IntArrayRef offsets, double lam) {
  const DType t = check_same_dtype(flat, "flat", params, offsets);
  if constexpr (B::kComputes)
    B::ternary(Ternary::Pull, flat, make_items(flat, params, offsets, false), t, lam, 0.0);
}

template <class B>
void easgd(at::TensorList params, const at::Tensor& center, const at::Tensor& total,
           at::IntArrayRef offsets, double alpha, double n) {
  const DType t = check_same_dtype(total, "total", params, offsets);
  check_like(total, "total", center, "center");
  // src = total, dst = params, aux = center
  if constexpr (B::kComputes)
    B::ternary(Ternary::Easgd, total, make_items(total, params, offsets, false, &center), t,
               alpha, n);
}

template <class B>
void sq_norm(at::TensorList tensors, const at::Tensor& out) {
  const DType t = check_norm_operands(tensors, out);
  if constexpr (B::kComputes) {
    std::vector<Item> items;
    for (const at::Tensor& x : tensors) items.push_back(Item{x.data_ptr(), nullptr, x.numel()});
    B::sq_norm(items, t, out);
  }
}

template <class B>
void quantize(const at::Tensor& src, const std::optional<at::Tensor>& error,
              const at::Tensor& payload, const at::Tensor& scales, int64_t bits, int64_t chunk) {
  check_quantized(src, "src", error.has_value() ? &*error : nullptr, payload, scales, bits, chunk);
  if constexpr (B::kComputes)
    B::quantize(src, error.has_value() ? error->data_ptr<float>() : nullptr, payload, scales,
                bits, chunk);
}

template <class B>
void dequantize(const at::Tensor& payload, const at::Tensor& scales, const at::Tensor& out,
                int64_t bits, int64_t chunk, double scale, bool accumulate) {
  check_quantized(out, "out", nullptr, payload, scales, bits, chunk);
  if constexpr (B::kComputes) B::dequantize(payload, scales, out, bits, chunk, scale, accumulate);
}

template <class B>
void topk_encode(const at::Tensor& src, const std::optional<at::Tensor>& error,
                 const at::Tensor& scales, const at::Tensor& positions, const at::Tensor& codes,
                 int64_t bits, int64_t chunk, int64_t k) {
  const int64_t chunks = check_topk(src, "src", error.has_value() ? &*error : nullptr, scales,
                                    positions, codes, bits, chunk, k);
  if constexpr (B::kComputes)
    B::topk_encode(src, error.has_value() ? error->data_ptr<float>() : nullptr, scales,
                   positions, codes, bits, chunk, k, chunks);
}

template <class B>
void topk_decode(const at::Tensor& scales, const at::Tensor& positions, const at::Tensor& codes,
                 const at::Tensor& out, int64_t bits, int64_t chunk, int64_t k, double scale,
                 bool accumulate) {
  const int64_t chunks = check_topk(out, "out", nullptr, scales, positions, codes, bits, chunk, k);
  if constexpr (B::kComputes)
    B::topk_decode(scales, positions, codes, out, bits, chunk, k, chunks, scale, accumulate);
}

template <class B>
void register_ops(torch::Library& m) {
  m.impl("topk_encode", &topk_encode<B>);
  m.impl("topk_decode", &topk_decode<B>);
  m.impl("pack", &pack<B>);
  m.impl("unpack", &unpack<B>);
  m.impl("dc_compensate", &dc_compensate<B>);
  m.impl("pull", &pull<B>);
  m.impl("easgd", &easgd<B>);
  m.impl("sq_norm", &sq_norm<B>);
  m.impl("quantize", &quantize<B>);
  m.impl("dequantize", &dequantize<B>);
}

}  // namespace ops
}  // namespace hvd_ext
