"""The one face of the compiled kernels: the only module that imports ``horovod_ext._C``.

Each kernel is named here once, with its meaning. Every one takes many tensors and makes one
pass over them (one parallel region on the CPU, one launch per chunk table on CUDA), checks its
arguments at the boundary (ValueError/TypeError naming the argument and index), and computes in
float32 (float64 when a float64 operand is involved), rounding once on store.
"""
from horovod_ext import _C

with_cuda = _C.with_cuda  # whether the extension was built with its CUDA kernels


def pack(srcs, dst, offsets, scale=1.0):
    """Many tensors into one flat buffer: ``dst[offsets[i] : offsets[i] + srcs[i].numel()] =
    scale * srcs[i]``, cast to ``dst``'s dtype (fp32 -> fp16/bf16 compression among others)."""
    _C.pack(srcs, dst, offsets, scale)


def unpack(src, offsets, dsts, scale=1.0, accumulate=False):
    """The reverse of pack: ``dsts[i] = scale * src[offsets[i] : ...]`` (``+=`` with
    ``accumulate``), cast to the dtype of ``dsts``."""
    _C.unpack(src, offsets, dsts, scale, accumulate)


def sq_norm(tensors, out):
    """``out[0] = sum_i |tensors[i]|^2`` as float32 (accumulated in float64 on the CPU)."""
    _C.sq_norm(tensors, out)


def dc_compensate(grad, params, snapshot, offsets, c):
    """Delay compensation (DC-ASGD), in place on the flat gradient:
    ``g += c * g * g * (params[i] - snapshot[o : o + n])`` with ``o = offsets[i]``."""
    _C.dc_compensate(grad, params, snapshot, offsets, c)


def pull(params, flat, offsets, lam):
    """Parameters pulled toward a flat buffer: ``params[i] -= lam * (params[i] - flat[o:o+n])``
    (Leader SGD's pull toward the leader)."""
    _C.pull(params, flat, offsets, lam)


def easgd(params, center, total, offsets, alpha, n):
    """EASGD's worker and center update in one pass, both from the old center c:
    ``params[i] -= alpha * (params[i] - c)`` and ``center = c + alpha * (total - n * c)``,
    ``total`` being the sum of all workers' parameters."""
    _C.easgd(params, center, total, offsets, alpha, n)
