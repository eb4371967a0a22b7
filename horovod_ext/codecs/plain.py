"""The stateless codecs: Horovod's ``Compressor``s (``none``, ``fp16``, user subclasses)."""
import horovod.torch as hvd
import torch
from horovod.torch.mpi_ops import Average, Sum

from horovod_ext import ops
from horovod_ext.codecs.base import Codec, allreduce


class CompressorCodec(Codec):
    """One allreduce of the bucket, through a Horovod ``Compressor``'s compress/decompress
    (``Compression.none`` sends the bucket itself, reduced in place)."""

    def __init__(self, compressor):
        self.compressor = compressor
        self.name = getattr(compressor, "__name__", type(compressor).__name__)

    def exchange(self, bucket, name, st, step, count):
        tensor, ctx = self.compressor.compress(bucket.flat)
        out = yield allreduce(tensor, name, st, count)
        if out is not bucket.flat:
            bucket.flat.copy_(self.compressor.decompress(out, ctx).view(-1))


class CastCodec(Codec):
    """The bucket cast to ``dtype`` and back by the fused kernels: cast and prescale in one pass
    into a buffer of the bucket's, reduced as a sum, the average's 1/size folded into the cast
    back (``Compression.fp16``)."""

    def __init__(self, dtype, name):
        self.dtype, self.name = dtype, name

    def new_state(self, bucket):
        if bucket.flat.dtype == self.dtype:
            return None
        return torch.empty(bucket.flat.numel(), dtype=self.dtype, device=bucket.flat.device)

    def buffers(self, state):
        return [] if state is None else [state]

    def exchange(self, bucket, name, st, step, count):
        comm = bucket.codec_state
        if comm is None:
            yield allreduce(bucket.flat, name, st, count)
            return
        average = st.op == Average
        f = st.gradient_predivide_factor
        ops.pack([bucket.flat], comm, [0], 1.0 / f if average else 1.0)
        count("allreduce", comm)
        yield hvd.allreduce_async_(comm, name=name, op=Sum if average else st.op,
                                   process_set=st.process_set)
        scale = f / st.process_set.size() if average else 1.0
        ops.unpack(comm, [0], [bucket.flat], scale, False)
