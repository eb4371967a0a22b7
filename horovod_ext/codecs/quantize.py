"""Quantized allreduce: 8 or 4 bits per element with a float32 scale per chunk and error feedback
on both quantizations, in the alltoall + allgather layout of compressed allreduces (Tang et al.,
"1-bit Adam", 2021; Wang et al., "ZeRO++", 2023).

Per bucket of S elements on N ranks: the bucket (plus this rank's error) is split into N shards
of s elements, in chunks of c elements, each quantized with scale absmax / (2^(b-1) - 1); rank i
sends shard j to rank j (one alltoall), and keeps as error its input minus what it sent. Rank j
dequantizes the N copies of its shard, sums them (divides by N for Average), adds its own owner
error, quantizes again (keeping the owner error) and sends the result to every rank (one
allgather); every rank dequantizes all N shards into the bucket. 4 bits pack two values a byte.
Bytes per rank: (N - 1)/N of the quantized bucket twice, plus the scales.
"""
from dataclasses import dataclass

import torch
from horovod.torch.mpi_ops import Average

from horovod_ext import ops
from horovod_ext.codecs.base import Codec, Collective, check_float32, check_linear_op
from horovod_ext.runtime import checks


def piece_layout(numel, n, bits, chunk):
    """(shard elements s, chunk c, payload bytes, scale bytes) of one shard of a bucket of
    ``numel`` elements on n ranks: c and s multiples of 8, so every piece's scales are aligned."""
    per_rank = -(-numel // n)
    c = min(chunk, -(-per_rank // 8) * 8)    # small buckets: one chunk per shard
    s = -(-per_rank // c) * c
    return s, c, s * bits // 8, (s // c) * 4


def encode(src, error, piece, bits, c):
    """``src`` (+ error) into one piece: uint8 [payload | float32 scales] (ops.quantize)."""
    payload_bytes = piece.numel() - piece.numel() * 32 // (32 + c * bits)
    ops.quantize(src, error, piece[:payload_bytes], piece[payload_bytes:].view(torch.float32),
                 bits, c)


def decode(piece, out, bits, c, scale=1.0, accumulate=False):
    payload_bytes = piece.numel() - piece.numel() * 32 // (32 + c * bits)
    ops.dequantize(piece[:payload_bytes], piece[payload_bytes:].view(torch.float32), out, bits,
                   c, scale, accumulate)


class _BucketState:
    """The sender's error, and the owner's error laid over the whole bucket (zero outside this
    rank's shard), so that both are saved per parameter and survive a new bucket plan: an owner
    error outside the shard this rank owns now is folded into its sender error, times N, which
    adds the same amount to the next average."""

    def __init__(self, codec, view):
        on = codec.error_feedback
        self.error = torch.zeros_like(view.flat) if on else None
        self.owner = torch.zeros_like(view.flat) if on else None
        self.offsets = view.offsets
        self.sizes = [s.numel() for s in view.shapes]
        self.loaded = False  # owner error loaded from another layout: fold what is outside


@dataclass(frozen=True)
class Quantize(Codec):
    """``compression=hvd_ext.Quantize(bits=8)``: see the module docstring.

    Args:
        bits: 8 or 4 bits per element.
        error_feedback: keep what rounding lost and add it to the next input.
        chunk: elements per float32 scale, a multiple of 8 in [8, 4096].
    """

    bits: int = 8
    error_feedback: bool = True
    chunk: int = 2048
    name = "quantize"
    stages = 2

    def __post_init__(self):
        checks.one_of("Quantize.bits", self.bits, (8, 4))
        checks.boolean("Quantize.error_feedback", self.error_feedback)
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) \
                or not 8 <= self.chunk <= 4096 or self.chunk % 8:
            raise ValueError(f"Quantize.chunk must be a multiple of 8 in [8, 4096]; got "
                             f"{self.chunk!r}")

    def check(self, settings):
        check_linear_op(self, settings)

    def new_state(self, view):
        check_float32(self, view, "quantizes float32 gradients")
        return _BucketState(self, view)

    def buffers(self, state):
        return [t for t in (state.error, state.owner) if t is not None]

    def exchange(self, view, prefix, st, step):
        state, flat = view.state, view.flat
        n, numel, bits = st.process_set.size(), flat.numel(), self.bits
        s, c, payload, scale_bytes = piece_layout(numel, n, bits, self.chunk)
        bounds = [(min(j * s, numel), min((j + 1) * s, numel)) for j in range(n + 1)]
        lo, hi = bounds[st.process_set.rank()]
        if state.loaded:  # owner error outside this rank's shard: see _BucketState
            state.loaded = False
            state.error[:lo] += n * state.owner[:lo]
            state.error[hi:] += n * state.owner[hi:]
            state.owner[:lo] = 0
            state.owner[hi:] = 0
        send = torch.empty(n, payload + scale_bytes, dtype=torch.uint8, device=flat.device)
        for j, (a, b) in enumerate(bounds[:n]):
            encode(flat[a:b], None if state.error is None else state.error[a:b], send[j], bits, c)
        received, _ = yield Collective("alltoall", send, prefix + ".shards")
        mine = torch.empty(hi - lo, dtype=flat.dtype, device=flat.device)
        for i in range(n):
            decode(received[i], mine, bits, c, 1.0 / n if st.op == Average else 1.0, i > 0)
        piece = torch.empty(1, payload + scale_bytes, dtype=torch.uint8, device=flat.device)
        encode(mine, None if state.error is None else state.owner[lo:hi], piece[0], bits, c)
        gathered = yield Collective("allgather", piece, prefix + ".sums")
        for j, (a, b) in enumerate(bounds[:n]):
            decode(gathered[j], flat[a:b], bits, c)

    def save(self, state, k):
        if state.error is None:
            return None
        sl = slice(state.offsets[k], state.offsets[k] + state.sizes[k])
        return {"error": state.error[sl].clone(), "owner": state.owner[sl].clone()}

    def load(self, state, k, saved):
        if state.error is not None and saved is not None:
            sl = slice(state.offsets[k], state.offsets[k] + state.sizes[k])
            state.error[sl] = saved["error"]
            state.owner[sl] = saved["owner"]
            state.loaded = True

    def reset(self, state):
        for t in self.buffers(state):
            t.zero_()
