// Top-k sparsification on the CPU (kernels.h: topk_encode_cpu, topk_decode_cpu). Selection is
// branchy and data-dependent, so one portable version serves every instruction set: per chunk,
// std::nth_element on the positions by key (topk_math.h), then the k positions sorted.
#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"
#include "topk_math.h"

namespace hvd_ext {

namespace {

void check(int bits, int64_t chunk, int64_t k, const char* who) {
  if ((bits != 1 && bits != 2 && bits != 4 && bits != 8 && bits != 32) || chunk < 1 ||
      chunk > 32768 || k < 1 || k > chunk)
    throw std::invalid_argument(std::string(who) + ": bits must be 1, 2, 4, 8 or 32, chunk in "
                                "[1, 32768] and k in [1, chunk]");
}

}  // namespace

int64_t topk_value_bytes(int64_t k, int bits) { return bits == 32 ? 4 * k : (k * bits + 7) / 8; }

void topk_encode_cpu(const float* src, float* error, int64_t n, int64_t chunk, int64_t k,
                     int bits, float* scales, int16_t* positions, uint8_t* values, int64_t first,
                     int64_t last) {
  check(bits, chunk, k, "topk_encode");
  const int64_t vbytes = topk_value_bytes(k, bits);
  std::vector<float> v(chunk);
  std::vector<int32_t> at(chunk);
  for (int64_t c = first; c < last; ++c) {
    const int64_t begin = c * chunk, m = std::max<int64_t>(0, std::min(n - begin, chunk));
    for (int64_t j = 0; j < chunk; ++j)
      v[j] = j < m ? src[begin + j] + (error != nullptr ? error[begin + j] : 0.f) : 0.f;
    std::iota(at.begin(), at.end(), 0);
    std::nth_element(at.begin(), at.begin() + (k - 1), at.end(), [&](int32_t a, int32_t b) {
      const uint32_t ka = topk::key(v[a]), kb = topk::key(v[b]);
      return ka > kb || (ka == kb && a < b);
    });
    std::sort(at.begin(), at.begin() + k);
    int16_t* pos = positions + c * k;
    for (int64_t s = 0; s < k; ++s) pos[s] = static_cast<int16_t>(at[s]);
    if (error != nullptr)
      for (int64_t j = 0; j < m; ++j) error[begin + j] = v[j];
    if (bits == 32) {
      float* out = reinterpret_cast<float*>(values) + c * k;
      for (int64_t s = 0; s < k; ++s) {
        out[s] = v[at[s]];
        if (error != nullptr && at[s] < m) error[begin + at[s]] = v[at[s]] - out[s];
      }
      continue;
    }
    float scale = 0.f;
    if (bits == 1) {
      double sum = 0.0;  // summed in double: the mean is the same whatever the order
      for (int64_t s = 0; s < k; ++s) sum += std::fabs(v[at[s]]);
      scale = static_cast<float>(sum / static_cast<double>(k));
    } else {
      for (int64_t s = 0; s < k; ++s) scale = std::max(scale, std::fabs(v[at[s]]));
      scale /= static_cast<float>(topk::levels(bits));
    }
    scales[c] = scale;
    uint8_t* codes = values + c * vbytes;
    std::fill(codes, codes + vbytes, uint8_t{0});
    for (int64_t s = 0; s < k; ++s) {
      const float x = v[at[s]];
      const uint32_t code = topk::code_of(x, scale, bits);
      codes[(s * bits) >> 3] |= static_cast<uint8_t>(code << ((s * bits) & 7));
      if (error != nullptr && at[s] < m)
        error[begin + at[s]] = x - topk::value_of(code, scale, bits);
    }
  }
}

void topk_decode_cpu(const float* scales, const int16_t* positions, const uint8_t* values,
                     int bits, int64_t chunk, int64_t k, float* out, int64_t n, float scale,
                     bool accumulate, int64_t first, int64_t last) {
  check(bits, chunk, k, "topk_decode");
  const int64_t vbytes = topk_value_bytes(k, bits);
  for (int64_t c = first; c < last; ++c) {
    const int64_t begin = c * chunk, m = std::max<int64_t>(0, std::min(n - begin, chunk));
    if (!accumulate) std::fill(out + begin, out + begin + m, 0.f);
    const int16_t* pos = positions + c * k;
    for (int64_t s = 0; s < k; ++s) {
      const int64_t p = pos[s];
      if (p < 0 || p >= m) continue;  // the padding past n
      const float x = bits == 32 ? reinterpret_cast<const float*>(values)[c * k + s]
                                 : topk::value_of(topk::read_code(values + c * vbytes, s, bits),
                                                  scales[c], bits);
      const float y = scale * x;
      out[begin + p] = accumulate ? out[begin + p] + y : y;
    }
  }
}

}  // namespace hvd_ext
