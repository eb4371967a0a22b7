"""Codecs: how a bucket's gradient crosses the wire (base.py has the interface). One registry maps
what the user passes as ``compression=`` to a codec: Horovod's ``Compression.none`` and
``Compression.fp16`` (the fused cast kernels), any other Horovod ``Compressor`` (its own
compress/decompress on the flat bucket), or a codec of this package (``PowerSGD``,
``Quantize``). A new codec is one module here and one line below when it needs a name."""
import torch
from horovod.torch.compression import Compression

from horovod_ext.codecs.base import Codec, Exchange
from horovod_ext.codecs.plain import CastCodec, CompressorCodec
from horovod_ext.codecs.powersgd import PowerSGD
from horovod_ext.codecs.quantize import Quantize

__all__ = ["Codec", "Exchange", "PowerSGD", "Quantize", "codec_for"]

_HOROVOD = {Compression.none: lambda: CompressorCodec(Compression.none),
            Compression.fp16: lambda: CastCodec(torch.float16, "fp16")}


def codec_for(compression):
    """The codec for a ``compression=`` argument; ValueError naming it when it is none of the
    above."""
    if isinstance(compression, Codec):
        return compression
    if compression in _HOROVOD:
        return _HOROVOD[compression]()
    if hasattr(compression, "compress") and hasattr(compression, "decompress"):
        return CompressorCodec(compression)
    raise ValueError(f"compression must be a Horovod Compressor (such as "
                     f"horovod_ext.Compression.fp16) or a codec (horovod_ext.PowerSGD, "
                     f"horovod_ext.Quantize); got {compression!r}")
