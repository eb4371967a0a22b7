"""Gradient compression for communication: Horovod's own ``Compression`` namespace.

``horovod_ext.DistributedOptimizer`` recognises ``Compression.none`` and ``Compression.fp16`` and
performs the fp16 cast with its fused pack/unpack kernels (cast, scale and copy in one pass per
bucket); any other Horovod ``Compressor`` is applied to the whole flat bucket through its own
``compress``/``decompress``. There is no bfloat16 compression: Horovod 0.28.1's torch binding has
no bfloat16 allreduce (CPU or GPU), so a bf16 buffer cannot be reduced by it.
"""
import torch
from horovod.torch.compression import Compression

# Communication dtype of the compressors whose cast the kernels perform; None: no cast.
KERNEL_CASTS = {Compression.none: None, Compression.fp16: torch.float16}
