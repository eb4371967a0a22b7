// Framework-free kernels of horovod_ext: no torch, no Python. Raw pointers, element counts,
// dtype tags and (for CUDA) a stream.
//
// Every kernel works on a list of "items": item i moves numel[i] elements from src[i] to dst[i].
// pack (tensors -> flat bucket) and unpack (flat bucket -> tensors) are the same operation with
// the flat side's addresses computed from offsets, so they share one kernel: scale_copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hvd_ext {

enum class DType : int { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3 };

struct Item {
  const void* src;  // numel elements of the source dtype
  void* dst;        // numel elements of the destination dtype
  int64_t numel;
  void* aux = nullptr;  // a third operand (read, or read and written) for the ternary kernels
};

// A contiguous piece of one item: elements [begin, end) of items[item].
struct Chunk {
  int32_t item;
  int64_t begin;
  int64_t end;
};

// Splits items into chunks of at most chunk_elems elements; empty items get no chunk.
std::vector<Chunk> make_chunks(const Item* items, int64_t n_items, int64_t chunk_elems);

// CPU. Chunks [first, last) of a chunk list; callers spread chunk ranges over threads.
// dst = scale * src            (accumulate == false)
// dst = dst + scale * src      (accumulate == true)
// computed in float (double for Float64 on either side), cast on store (round to nearest even).
void scale_copy_cpu(const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                    DType src_t, DType dst_t, double scale, bool accumulate);

// CPU. Writes sum(src^2) of chunk c to partial[c - first] for c in [first, last), summed in
// double (the AVX2/AVX-512 sets sum float32 squares in groups of at most 8 per lane first:
// relative error below 2^-21). Items' dst is ignored.
void sq_norm_partials_cpu(const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                          DType src_t, double* partial);

// Element-wise updates over three operands of one dtype, d = dst, s = src, x = aux, computed
// in float (double for Float64); the formulas live in ternary_ops.h, shared with CUDA.
enum class Ternary : int {
  DcCompensate = 0,  // d += a * d * d * (s - x)      gradient, current params, params then
  Pull = 1,          // d -= a * (d - s)               params pulled toward s (leader, center)
  Easgd = 2,         // d -= a * (d - x); x += a * (s - b * x), both with the old x
};
void ternary_cpu(Ternary op, const Item* items, const Chunk* chunks, int64_t first, int64_t last,
                 DType t, double a, double b);

// Quantization of float32 to `bits` (8 or 4) per element, in chunks of `chunk` (even) elements
// with one float32 scale each: v = src[j] + error[j] (src and error zero beyond n elements, up
// to the padded length chunks * chunk); scale = absmax(v over the chunk) / L with
// L = 2^(bits-1) - 1; q = clamp(round_half_even(v / scale), -L, L) (0 where scale is 0), stored
// as q + L + 1 in a byte (8 bits) or a nibble (4 bits: element 2i low, 2i + 1 high);
// error[j] = v - q * scale for j < n (error may be null: no error feedback).
// CPU: chunks [first, last).
void quantize_cpu(const float* src, float* error, int64_t n, int bits, int64_t chunk,
                  uint8_t* payload, float* scales, int64_t first, int64_t last);
// out[j] = scale * q[j] * scales[chunk of j] (+ out[j] with accumulate), j < n; chunks
// [first, last).
void dequantize_cpu(const uint8_t* payload, const float* scales, int bits, int64_t chunk,
                    float* out, int64_t n, float scale, bool accumulate, int64_t first,
                    int64_t last);

// Top-k sparsification with error feedback (the TopK codec). Per chunk c of `chunk` elements
// (v[j] = src[j] + error[j], zero at and past n; chunk <= 32768): the k entries of largest |v|
// (NOTE: [top-k order] in topk_math.h), their positions in the chunk in ascending order
// (positions[c * k ...], int16), and their values: float32 (bits == 32, values[c * 4k ...]) or
// codes of `bits` (1, 2, 4, 8; topk_math.h) packed in vbytes = ceil(k * bits / 8) bytes
// (values[c * vbytes ...]) with one float32 scale (scales[c]; unused at 32 bits).
// error[j] = v[j] - the decoded value at a selected position, v[j] elsewhere (j < n; error may
// be null: no error feedback). CPU: chunks [first, last).
int64_t topk_value_bytes(int64_t k, int bits);
void topk_encode_cpu(const float* src, float* error, int64_t n, int64_t chunk, int64_t k,
                     int bits, float* scales, int16_t* positions, uint8_t* values, int64_t first,
                     int64_t last);
// out[c * chunk + position] = scale * the decoded value (+= with accumulate) for each selected
// position below n; without accumulate the chunk's other elements are set to 0.
void topk_decode_cpu(const float* scales, const int16_t* positions, const uint8_t* values,
                     int bits, int64_t chunk, int64_t k, float* out, int64_t n, float scale,
                     bool accumulate, int64_t first, int64_t last);

// The CPU instruction set the kernels run with: the widest of "base" (any CPU), "avx2" (AVX2,
// FMA, F16C) and "avx512" (AVX-512 F/BW/VL and the above) that this CPU has, or the one named by
// HOROVOD_EXT_CPU_ISA. cpu_isas() lists this CPU's, comma-separated; set_cpu_isa() switches
// (std::invalid_argument for one the CPU lacks). Every set gives bitwise the same results except
// the squared norm's summation order.
const char* cpu_isa();
std::string cpu_isas();
void set_cpu_isa(const char* name);

// Scalar conversions shared by the CPU kernels and the C++ tests.
uint16_t float_to_half(float f);
float half_to_float(uint16_t h);
uint16_t float_to_bfloat16(float f);
float bfloat16_to_float(uint16_t h);

#ifdef HVD_EXT_WITH_CUDA
// CUDA: all items in as few launches as the kernel-argument chunk table allows (one launch for
// up to kMaxTensorsPerLaunch tensors and kMaxBlocksPerLaunch chunks), on `stream`.
// Returns a cudaError_t value as int (0 on success).
int scale_copy_cuda(const Item* items, int64_t n_items, DType src_t, DType dst_t, float scale,
                    bool accumulate, void* stream);
// ternary_cpu's math on the GPU.
int ternary_cuda(Ternary op, const Item* items, int64_t n_items, DType t, float a, float b,
                 void* stream);
// Blocks sq_norm_cuda needs as workspace (floats).
int64_t sq_norm_cuda_workspace(const Item* items, int64_t n_items);
// out[0] = sum over items of sum(src^2) as float; workspace holds sq_norm_cuda_workspace floats.
int sq_norm_cuda(const Item* items, int64_t n_items, DType src_t, float* workspace, float* out,
                 void* stream);
// quantize_cpu / dequantize_cpu over every chunk, one block per chunk.
int quantize_cuda(const float* src, float* error, int64_t n, int bits, int64_t chunk,
                  int64_t chunks, uint8_t* payload, float* scales, void* stream);
int dequantize_cuda(const uint8_t* payload, const float* scales, int bits, int64_t chunk,
                    float* out, int64_t n, float scale, bool accumulate, void* stream);
// topk_encode_cpu / topk_decode_cpu over `chunks` chunks, one block per chunk.
int topk_encode_cuda(const float* src, float* error, int64_t n, int64_t chunk, int64_t k,
                     int bits, int64_t chunks, float* scales, int16_t* positions,
                     uint8_t* values, void* stream);
int topk_decode_cuda(const float* scales, const int16_t* positions, const uint8_t* values,
                     int bits, int64_t chunk, int64_t k, int64_t chunks, float* out, int64_t n,
                     float scale, bool accumulate, void* stream);
#endif

}  // namespace hvd_ext
