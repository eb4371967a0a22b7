"""Gradient compression for communication, Horovod's ``Compression`` namespace plus bf16.

``Compression.none`` and ``Compression.fp16`` are Horovod's own classes, so code written for
``hvd.DistributedOptimizer`` passes them unchanged. ``Compression.bf16`` follows Horovod's
``Compressor`` interface, so it works with ``hvd.DistributedOptimizer`` too.
``horovod_ext.DistributedOptimizer`` recognises these three and performs the cast with its fused
pack/unpack kernels (cast, scale and copy in one pass per bucket); any other ``Compressor`` is
applied to the whole flat bucket through its own ``compress``/``decompress``.
"""
import torch
from horovod.torch.compression import Compression as _HorovodCompression
from horovod.torch.compression import Compressor


class BF16Compressor(Compressor):
    """Casts floating-point gradients to bfloat16 for communication, back afterwards."""

    @staticmethod
    def compress(tensor):
        if tensor.dtype.is_floating_point:
            return tensor.type(torch.bfloat16), tensor.dtype
        return tensor, tensor.dtype

    @staticmethod
    def decompress(tensor, ctx):
        return tensor.type(ctx) if ctx.is_floating_point else tensor


class Compression:
    none = _HorovodCompression.none
    fp16 = _HorovodCompression.fp16
    bf16 = BF16Compressor


# Communication dtype of the compressors whose cast the kernels perform; None: no cast.
KERNEL_CASTS = {Compression.none: None, Compression.fp16: torch.float16,
                Compression.bf16: torch.bfloat16}
