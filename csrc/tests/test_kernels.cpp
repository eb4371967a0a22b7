// C++ tests of the CPU kernels, without torch: conversions at their edges, scale_copy and the
// squared norm against double references over random sizes (including 0 and chunk edges).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "../kernels.h"

using namespace hvd_ext;

static int failures = 0;
static int checks = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    ++checks;                                              \
    if (!(cond)) {                                         \
      ++failures;                                          \
      std::printf("FAIL %s:%d: ", __FILE__, __LINE__);     \
      std::printf(__VA_ARGS__);                            \
      std::printf("\n");                                   \
    }                                                      \
  } while (0)

static float f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

static void test_half_edges() {
  CHECK(float_to_half(1.0f) == 0x3c00, "1.0");
  CHECK(float_to_half(-2.0f) == 0xc000, "-2.0");
  CHECK(float_to_half(65504.0f) == 0x7bff, "max half");
  CHECK(float_to_half(65519.0f) == 0x7bff, "below the overflow tie");
  CHECK(float_to_half(65520.0f) == 0x7c00, "overflow tie rounds to inf");
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001, "smallest subnormal");
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000, "tie below smallest subnormal -> 0");
  CHECK(float_to_half(std::ldexp(3.0f, -25)) == 0x0002, "tie 1.5 ulp -> even 2");
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00, "tie to even (down)");
  CHECK(float_to_half(1.0f + std::ldexp(3.0f, -11)) == 0x3c02, "tie to even (up)");
  CHECK((float_to_half(NAN) & 0x7fff) > 0x7c00, "nan stays nan");
  CHECK(float_to_half(-INFINITY) == 0xfc00, "-inf");
  CHECK(float_to_bfloat16(1.0f) == 0x3f80, "bf16 1.0");
  CHECK(float_to_bfloat16(f32(0x3f808000)) == 0x3f80, "bf16 tie to even (down)");
  CHECK(float_to_bfloat16(f32(0x3f818000)) == 0x3f82, "bf16 tie to even (up)");
  CHECK((float_to_bfloat16(f32(0x7f800001)) & 0x7fff) > 0x7f80, "bf16 signalling nan stays nan");
  // Every half converts back exactly (except nan payload checks).
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    CHECK(float_to_half(f) == h, "half %04x round trip", h);
    CHECK(float_to_bfloat16(bfloat16_to_float(static_cast<uint16_t>(h))) == h || std::isnan(bfloat16_to_float(h)),
          "bf16 %04x round trip", h);
  }
}

static void test_scale_copy_and_norm() {
  std::mt19937 rng(42);
  std::normal_distribution<float> normal;
  const int64_t chunk = 1000;
  const std::vector<std::vector<int64_t>> cases = {{0}, {1}, {999, 1000, 1001}, {5, 0, 3001},
                                                   std::vector<int64_t>(300, 3)};
  for (const auto& sizes : cases) {
    std::vector<std::vector<float>> src(sizes.size());
    std::vector<Item> items;
    int64_t total = 0;
    for (size_t i = 0; i < sizes.size(); ++i) total += sizes[i];
    std::vector<double> flat(total, -1.0);
    int64_t off = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      for (int64_t j = 0; j < sizes[i]; ++j) src[i].push_back(normal(rng));
      items.push_back({src[i].data(), flat.data() + off, sizes[i]});
      off += sizes[i];
    }
    const auto chunks = make_chunks(items.data(), items.size(), chunk);
    for (const Chunk& c : chunks) CHECK(c.end - c.begin <= chunk && c.end > c.begin, "chunk size");
    // Two halves of the chunk list, as two threads would run them.
    const int64_t half = static_cast<int64_t>(chunks.size()) / 2;
    scale_copy_cpu(items.data(), chunks.data(), 0, half, DType::Float32, DType::Float64, 0.5, false);
    scale_copy_cpu(items.data(), chunks.data(), half, chunks.size(), DType::Float32, DType::Float64,
                   0.5, true /* accumulate onto -1 */);
    off = 0;
    int bad = 0;
    for (size_t i = 0; i < sizes.size(); ++i)
      for (int64_t j = 0; j < sizes[i]; ++j, ++off) {
        const int64_t c = [&] {
          for (size_t k = 0; k < chunks.size(); ++k)
            if (chunks[k].item == static_cast<int32_t>(i) && j >= chunks[k].begin && j < chunks[k].end)
              return static_cast<int64_t>(k);
          return int64_t(-1);
        }();
        const double want = (c < half ? 0.0 : -1.0) + 0.5 * static_cast<double>(src[i][j]);
        bad += flat[off] != want;
      }
    CHECK(bad == 0, "scale_copy: %d wrong elements", bad);
    std::vector<double> partial(chunks.size());
    sq_norm_partials_cpu(items.data(), chunks.data(), 0, chunks.size(), DType::Float32, partial.data());
    double got = 0, want = 0;
    for (double p : partial) got += p;
    for (const auto& s : src)
      for (float v : s) want += static_cast<double>(v) * v;
    // float32 squares summed in small groups (2^-24 each), then float64
    CHECK(std::fabs(got - want) <= 1e-6 * std::max(1.0, want), "sq_norm %g vs %g", got, want);
  }
}

// Every instruction set this CPU has gives bitwise the base kernels' results (the squared norm to
// 1e-6: its vector sets sum float32 squares in small groups before float64), over every cast the engine uses, with and without accumulate, on sizes that
// leave vector tails, and on values at the fp16 edges (subnormals, ties, overflow, inf, nan).
static void test_instruction_sets_agree() {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  const int64_t n = 4099;
  std::vector<float> f32(n), f32_dst(n);
  std::vector<uint16_t> f16(n);
  for (int64_t j = 0; j < n; ++j) f32[j] = normal(rng) * std::ldexp(1.0f, int(rng() % 48) - 30);
  const float edges[] = {65504.0f, 65519.99f, 65520.0f, std::ldexp(1.0f, -24), std::ldexp(1.0f, -25),
                         std::ldexp(3.0f, -25), 1.0f + std::ldexp(1.0f, -11), INFINITY, -0.0f};
  for (size_t k = 0; k < sizeof(edges) / sizeof(float); ++k) f32[100 + k] = edges[k];
  for (int64_t j = 0; j < n; ++j) f16[j] = float_to_half(normal(rng));
  for (int64_t j = 0; j < n; ++j) f32_dst[j] = normal(rng);
  struct Case { DType s, d; const void* src; size_t dsize; };
  const Case cases[] = {{DType::Float32, DType::Float16, f32.data(), 2},
                        {DType::Float16, DType::Float32, f16.data(), 4},
                        {DType::Float16, DType::Float16, f16.data(), 2},
                        {DType::Float32, DType::Float32, f32.data(), 4},
                        {DType::Float32, DType::BFloat16, f32.data(), 2}};
  auto run = [&](const Case& c, double scale, bool acc) {
    std::vector<char> out(n * c.dsize);
    if (c.dsize == 4) std::memcpy(out.data(), f32_dst.data(), n * 4);
    else for (int64_t j = 0; j < n; ++j) std::memcpy(&out[2 * j], &f16[(j + 5) % n], 2);
    const Item item{c.src, out.data(), n};
    const auto chunks = make_chunks(&item, 1, 1000);
    scale_copy_cpu(&item, chunks.data(), 0, chunks.size(), c.s, c.d, scale, acc);
    return out;
  };
  auto run_ternary = [&](Ternary op) {
    std::vector<float> d(f32_dst), x(f32.rbegin(), f32.rend());
    for (float& v : x) v = std::isfinite(v) ? v : 1.0f;
    std::vector<float> s(n, 0.25f);
    const Item item{s.data(), d.data(), n, x.data()};
    const auto chunks = make_chunks(&item, 1, 1000);
    ternary_cpu(op, &item, chunks.data(), 0, chunks.size(), DType::Float32, 0.3, 2.0);
    d.insert(d.end(), x.begin(), x.end());
    return d;
  };
  auto norm = [&]() {
    std::vector<float> v(f32_dst);
    const Item item{v.data(), nullptr, n};
    const auto chunks = make_chunks(&item, 1, 1000);
    std::vector<double> partial(chunks.size());
    sq_norm_partials_cpu(&item, chunks.data(), 0, chunks.size(), DType::Float32, partial.data());
    double total = 0;
    for (double p : partial) total += p;
    return total;
  };
  auto quantized = [&](int bits) {  // payload bytes, then scales, then error, then decoded
    const int64_t chunk = 64, chunks = (n + chunk - 1) / chunk;
    std::vector<float> err(f32_dst), scales(chunks), out(n);
    std::vector<uint8_t> payload(chunks * chunk * bits / 8);
    for (float& v : err) v *= 1e-3f;
    std::vector<float> src(f32);
    for (float& v : src) v = std::isfinite(v) ? v : 1.0f;
    quantize_cpu(src.data(), err.data(), n, bits, chunk, payload.data(), scales.data(), 0, chunks);
    dequantize_cpu(payload.data(), scales.data(), bits, chunk, out.data(), n, 0.5f, false, 0,
                   chunks);
    std::vector<char> all(payload.begin(), payload.end());
    for (const auto* v : {&scales, &err, &out})
      all.insert(all.end(), reinterpret_cast<const char*>(v->data()),
                 reinterpret_cast<const char*>(v->data() + v->size()));
    return all;
  };
  set_cpu_isa("base");
  const std::vector<char> want_q8 = quantized(8), want_q4 = quantized(4);
  std::vector<std::vector<char>> want;
  for (const Case& c : cases)
    for (bool acc : {false, true})
      for (double scale : {1.0, 0.37}) want.push_back(run(c, scale, acc));
  std::vector<std::vector<float>> want_ternary;
  for (Ternary op : {Ternary::DcCompensate, Ternary::Pull, Ternary::Easgd})
    want_ternary.push_back(run_ternary(op));
  const double want_norm = norm();
  const std::string isas = cpu_isas();
  std::printf("instruction sets of this CPU: %s\n", isas.c_str());
  for (const char* isa : {"avx2", "avx512"}) {
    if (isas.find(isa) == std::string::npos) continue;
    set_cpu_isa(isa);
    size_t k = 0;
    for (const Case& c : cases)
      for (bool acc : {false, true})
        for (double scale : {1.0, 0.37}) {
          const auto got = run(c, scale, acc);
          CHECK(got == want[k], "%s: scale_copy %d->%d scale %g acc %d differs from base", isa,
                int(c.s), int(c.d), scale, int(acc));
          ++k;
        }
    k = 0;
    for (Ternary op : {Ternary::DcCompensate, Ternary::Pull, Ternary::Easgd})
      CHECK(std::memcmp(run_ternary(op).data(), want_ternary[k++].data(), 8 * n) == 0,
            "%s: ternary %d differs from base", isa, int(op));
    CHECK(quantized(8) == want_q8 && quantized(4) == want_q4, "%s: quantize differs from base",
          isa);
    const double got_norm = norm();
    CHECK(std::fabs(got_norm - want_norm) <= 1e-6 * want_norm, "%s: sq_norm %.17g vs %.17g",
          isa, got_norm, want_norm);
  }
  bool refused = false;
  try {
    set_cpu_isa("sse1");
  } catch (const std::invalid_argument&) {
    refused = true;
  }
  CHECK(refused, "an unknown instruction set is refused");
  set_cpu_isa(isas.substr(isas.rfind(' ') == std::string::npos ? 0 : isas.rfind(' ') + 1).c_str());
}

int main() {
  test_half_edges();
  test_scale_copy_and_norm();
  test_instruction_sets_agree();
  std::printf("%d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
