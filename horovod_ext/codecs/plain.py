"""The stateless codecs: Horovod's ``Compressor``s (``none``, ``fp16``, user subclasses)."""
import torch
from horovod.torch.mpi_ops import Average, Sum

from horovod_ext import ops
from horovod_ext.codecs.base import Codec, Collective, allreduce


class CompressorCodec(Codec):
    """One allreduce of the bucket, through a Horovod ``Compressor``'s compress/decompress
    (``Compression.none`` sends the bucket itself, reduced in place)."""

    def __init__(self, compressor):
        self.compressor = compressor
        self.name = getattr(compressor, "__name__", type(compressor).__name__)

    def exchange(self, view, prefix, st, step):
        tensor, ctx = self.compressor.compress(view.flat)
        out = yield allreduce(tensor, prefix, st)
        if out is not view.flat:
            view.flat.copy_(self.compressor.decompress(out, ctx).view(-1))


class CastCodec(Codec):
    """The bucket cast to ``dtype`` and back by the fused kernels: cast and prescale in one pass
    into a buffer of the bucket's, reduced as a sum, the average's 1/size folded into the cast
    back (``Compression.fp16``)."""

    def __init__(self, dtype, name):
        self.dtype, self.name = dtype, name

    def new_state(self, view):
        if view.dtype == self.dtype:
            return None
        return torch.empty(view.flat.numel(), dtype=self.dtype, device=view.device)

    def buffers(self, state):
        return [] if state is None else [state]

    def exchange(self, view, prefix, st, step):
        comm = view.state
        if comm is None:
            yield allreduce(view.flat, prefix, st)
            return
        average = st.op == Average
        f = st.gradient_predivide_factor
        ops.pack([view.flat], comm, [0], 1.0 / f if average else 1.0)
        yield Collective("allreduce", comm, prefix, Sum if average else st.op)
        scale = f / st.process_set.size() if average else 1.0
        ops.unpack(comm, [0], [view.flat], scale, False)
