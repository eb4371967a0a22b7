"""Sparse top-k with error feedback: per chunk of c elements only the k = max(1, round(d·c))
entries of largest magnitude cross the wire, their values in b bits with a scale per chunk
(SparseLoCo, Sarfi et al. 2025; DeMo, Peng et al. 2024 send sparse components too).

Per bucket on N ranks: u = G + e (this rank's error); per chunk the top-k of |u| (their
positions in the chunk as int16, their values coded with one float32 scale, or float32 at
b = 32): every rank's payload has the same size, so one allgather moves them all; every rank
decodes the N payloads in rank order, sums them and divides by N (Average), so every rank holds
the same result; e <- u - decode(own payload). The identity that error feedback keeps:
sum_t applied_t + mean_i e_i(T) = sum_t mean_i G_i,t. density=1, bits=32 is the exact average.
Bytes per rank: (N - 1) x the payload (chunks x (4 + 2k + k·b/8) bytes) against 2(N - 1)/N of
the float32 bucket for an allreduce (each region of the payload padded to 4 bytes).
"""
from dataclasses import dataclass

import torch
from horovod.torch.mpi_ops import Average

from horovod_ext import ops
from horovod_ext.codecs.base import Codec, Collective, check_float32, check_linear_op
from horovod_ext.runtime import checks

BITS = (1, 2, 4, 8, 32)


def layout(numel, density, bits, chunk):
    """(chunk c, k, chunks, scale bytes, position bytes, value bytes) of a bucket of ``numel``
    elements: the payload is [scales | positions (padded to 4 bytes) | values]."""
    c = max(1, min(chunk, numel))
    k = max(1, round(density * c))
    chunks = -(-numel // c)
    scale_bytes = 0 if bits == 32 else 4 * chunks
    position_bytes = -(-2 * k * chunks // 4) * 4
    return c, k, chunks, scale_bytes, position_bytes, chunks * ops.topk_value_bytes(k, bits)


def payload_bytes(numel, density, bits, chunk):
    """Bytes of one rank's payload for a bucket of ``numel`` elements, padded to 4 (the
    gathered payloads lie side by side, each starting with float32 scales)."""
    return -(-sum(layout(numel, density, bits, chunk)[3:]) // 4) * 4


def _parts(payload, numel, density, bits, chunk):
    """(scales, positions, codes) views of one payload (uint8)."""
    c, k, chunks, sb, pb, vb = layout(numel, density, bits, chunk)
    scales = payload[:sb].view(torch.float32)
    positions = payload[sb:sb + 2 * k * chunks].view(torch.int16)
    return scales, positions, payload[sb + pb:sb + pb + vb]


class _State:
    """The error of a bucket (None without error feedback), and where each tensor's part of it
    lies, so that it is saved per tensor and survives a new bucket plan."""

    def __init__(self, codec, view):
        self.error = torch.zeros_like(view.flat) if codec.error_feedback else None
        self.slices = [slice(o, o + s.numel()) for o, s in zip(view.offsets, view.shapes)]


@dataclass(frozen=True)
class TopK(Codec):
    """``compression=hvd_ext.TopK(density=0.01, bits=2, chunk=4096)``: see the module
    docstring.

    Args:
        density: the fraction of each chunk sent, in (0, 1].
        bits: bits per sent value: 1, 2, 4 or 8 (coded with a scale per chunk), or 32 (float32).
        chunk: elements per chunk, in [1, 32768] (a bucket smaller than one chunk is one chunk).
        error_feedback: keep what was not sent and add it to the next input.
    """

    density: float = 0.01
    bits: int = 2
    chunk: int = 4096
    error_feedback: bool = True
    name = "topk"

    def __post_init__(self):
        checks.fraction("TopK.density", self.density)
        checks.one_of("TopK.bits", self.bits, BITS)
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) \
                or not 1 <= self.chunk <= 32768:
            raise ValueError(f"TopK.chunk must be an int in [1, 32768]; got {self.chunk!r}")
        checks.boolean("TopK.error_feedback", self.error_feedback)

    def check(self, settings):
        check_linear_op(self, settings)

    def new_state(self, view):
        check_float32(self, view, "sparsifies float32 tensors")
        return _State(self, view)

    def buffers(self, state):
        return [] if state.error is None else [state.error]

    def payload_bytes(self, numel):
        """Bytes of one rank's payload for ``numel`` elements."""
        return payload_bytes(numel, self.density, self.bits, self.chunk)

    def exchange(self, view, prefix, st, step):
        flat, numel = view.flat, view.flat.numel()
        if numel == 0:
            return
        c, k, _, _, _, _ = layout(numel, self.density, self.bits, self.chunk)
        mine = torch.empty(1, self.payload_bytes(numel), dtype=torch.uint8, device=flat.device)
        ops.topk_encode(flat, view.state.error, *_parts(mine[0], numel, self.density, self.bits,
                                                  self.chunk), self.bits, c, k)
        gathered = yield Collective("allgather", mine, prefix + ".topk")
        n = gathered.shape[0]
        for i in range(n):  # in rank order: every rank sums alike
            ops.topk_decode(*_parts(gathered[i], numel, self.density, self.bits, self.chunk),
                            flat, self.bits, c, k, accumulate=i > 0)
        if st.op == Average:
            flat.mul_(1.0 / n)

    def save(self, state, k):
        return None if state.error is None else {"error": state.error[state.slices[k]].clone()}

    def load(self, state, k, saved):
        if state.error is not None and saved is not None:
            state.error[state.slices[k]] = saved["error"]

    def reset(self, state):
        for t in self.buffers(state):
            t.zero_()
