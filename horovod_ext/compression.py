"""Gradient compression for communication: Horovod's own ``Compression`` namespace.

``horovod_ext.DistributedOptimizer`` takes them as codecs (horovod_ext/codecs): ``Compression.fp16``
is the fused cast kernels (cast, scale and copy in one pass per bucket), any other Horovod
``Compressor`` is applied to the whole flat bucket through its own ``compress``/``decompress``. There is no bfloat16 compression: Horovod 0.28.1's torch binding has
no bfloat16 allreduce (CPU or GPU), so a bf16 buffer cannot be reduced by it.
"""
from horovod.torch.compression import Compression

__all__ = ["Compression"]
