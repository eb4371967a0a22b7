// The one chunking routine of the CUDA kernels: many tensors, one launch.
//
// NOTE: [chunk table] Each launch receives, by value, a table naming up to kMaxTensorsPerLaunch
// tensors and mapping each of up to kMaxBlocksPerLaunch blocks to (tensor slot, chunk index).
// The table (3,648 bytes: 64 x 32 bytes of addresses and sizes plus 320 x 5 bytes
// of block map) stays under the 4 KB kernel-argument limit of every architecture we build.
// A launch happens when the blocks or the tensor slots are full; a tensor whose chunks did not
// all fit is carried into slot 0 of the next table, so no tensor is ever split across tables
// in any other way. Empty tensors get no block. A 25 MB fp32 bucket of <= 64 tensors is one
// launch (100 chunks of 64 Ki elements).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../kernels.h"

namespace hvd_ext {

constexpr int kMaxTensorsPerLaunch = 64;
constexpr int kMaxBlocksPerLaunch = 320;
constexpr int64_t kChunkElems = 65536;
constexpr int kThreads = 256;
constexpr int kIlp = 4;  // elements per thread per vector access: 16 bytes of fp32

struct ChunkTable {
  const void* src[kMaxTensorsPerLaunch];
  void* dst[kMaxTensorsPerLaunch];
  void* aux[kMaxTensorsPerLaunch];
  int64_t numel[kMaxTensorsPerLaunch];
  uint8_t block_tensor[kMaxBlocksPerLaunch];
  int32_t block_chunk[kMaxBlocksPerLaunch];
};
static_assert(sizeof(ChunkTable) + 128 <= 4096, "chunk table must fit the kernel-argument limit");

// Calls launch(table, n_blocks, first_block) for each full table; first_block is the index of
// the launch's first block among all blocks (for per-block partial results). Returns the
// first non-zero value launch returned, or 0.
template <typename Launch>
int multi_tensor_apply(const Item* items, int64_t n_items, Launch launch) {
  ChunkTable table;
  int nt = 0;
  int nb = 0;
  int64_t first_block = 0;
  for (int64_t i = 0; i < n_items; ++i) {
    if (items[i].numel == 0) continue;
    table.src[nt] = items[i].src;
    table.dst[nt] = items[i].dst;
    table.aux[nt] = items[i].aux;
    table.numel[nt] = items[i].numel;
    const int64_t chunks = (items[i].numel + kChunkElems - 1) / kChunkElems;
    for (int64_t c = 0; c < chunks; ++c) {
      table.block_tensor[nb] = static_cast<uint8_t>(nt);
      table.block_chunk[nb] = static_cast<int32_t>(c);
      ++nb;
      const bool last_chunk = c == chunks - 1;
      if (nb == kMaxBlocksPerLaunch || (last_chunk && nt + 1 == kMaxTensorsPerLaunch)) {
        if (int err = launch(table, nb, first_block)) return err;
        first_block += nb;
        nb = 0;
        if (last_chunk) {
          nt = -1;  // the next tensor starts a fresh table at slot 0
        } else {    // carry the half-done tensor into slot 0
          table.src[0] = table.src[nt];
          table.dst[0] = table.dst[nt];
          table.aux[0] = table.aux[nt];
          table.numel[0] = table.numel[nt];
          nt = 0;
        }
      }
    }
    ++nt;
  }
  if (nb > 0) return launch(table, nb, first_block);
  return 0;
}

// Number of blocks multi_tensor_apply launches in all.
inline int64_t count_blocks(const Item* items, int64_t n_items) {
  int64_t blocks = 0;
  for (int64_t i = 0; i < n_items; ++i) blocks += (items[i].numel + kChunkElems - 1) / kChunkElems;
  return blocks;
}

}  // namespace hvd_ext
