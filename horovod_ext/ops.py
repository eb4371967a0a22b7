"""The one face of the compiled kernels: the only module that loads ``horovod_ext._C``.

The kernels are torch operators (``torch.ops.hvd_ext.*``, registered with ``TORCH_LIBRARY`` in
``csrc/torch``): each has a schema, CPU and CUDA implementations and a fake (Meta)
implementation, so ``torch.library.opcheck``, ``torch.compile`` and FakeTensor see through them.
Each takes many tensors and makes one pass over them (one parallel region on torch's intra-op
threads on the CPU, vectorised for the widest of AVX-512, AVX2 + F16C or plain x86-64/ARM the CPU
has; one launch per chunk table on CUDA), checks its arguments at the boundary
(ValueError/TypeError naming the argument and index), and computes in float32 (float64 when a
float64 operand is involved), rounding once on store.
"""
import torch

from horovod_ext import _C  # noqa: F401  (loading it registers torch.ops.hvd_ext)

_ops = torch.ops.hvd_ext

#: whether the extension was built with its CUDA kernels
with_cuda = torch._C._dispatch_has_kernel_for_dispatch_key("hvd_ext::pack", "CUDA")


def cpu_isa():
    """The instruction set the CPU kernels run with: ``"avx512"``, ``"avx2"`` or ``"base"`` (the
    widest this CPU has; ``HOROVOD_EXT_CPU_ISA`` asks for a narrower one)."""
    return _ops.cpu_isa()


def pack(srcs, dst, offsets, scale=1.0):
    """Many tensors into one flat buffer: ``dst[offsets[i] : offsets[i] + srcs[i].numel()] =
    scale * srcs[i]``, cast to ``dst``'s dtype (fp32 -> fp16/bf16 compression among others)."""
    _ops.pack(srcs, dst, offsets, scale)


def unpack(src, offsets, dsts, scale=1.0, accumulate=False):
    """The reverse of pack: ``dsts[i] = scale * src[offsets[i] : ...]`` (``+=`` with
    ``accumulate``), cast to the dtype of ``dsts``."""
    _ops.unpack(src, offsets, dsts, scale, accumulate)


def sq_norm(tensors, out):
    """``out[0] = sum_i |tensors[i]|^2`` as float32 (accumulated in float64 on the CPU, from
    float32 partial sums of at most 8 squares per vector lane)."""
    _ops.sq_norm(tensors, out)


def dc_compensate(grad, params, snapshot, offsets, c):
    """Delay compensation (DC-ASGD), in place on the flat gradient:
    ``g += c * g * g * (params[i] - snapshot[o : o + n])`` with ``o = offsets[i]``."""
    _ops.dc_compensate(grad, params, snapshot, offsets, c)


def pull(params, flat, offsets, lam):
    """Parameters pulled toward a flat buffer: ``params[i] -= lam * (params[i] - flat[o:o+n])``
    (Leader SGD's pull toward the leader)."""
    _ops.pull(params, flat, offsets, lam)


def easgd(params, center, total, offsets, alpha, n):
    """EASGD's worker and center update in one pass, both from the old center c:
    ``params[i] -= alpha * (params[i] - c)`` and ``center = c + alpha * (total - n * c)``,
    ``total`` being the sum of all workers' parameters."""
    _ops.easgd(params, center, total, offsets, alpha, n)


def quantize(src, error, payload, scales, bits, chunk):
    """float32 ``src`` (+ ``error``) to ``bits`` (8 or 4) per element in chunks of ``chunk``,
    ``scales.numel()`` of them: per chunk the scale absmax / (2^(bits-1) - 1) and codes
    round(v / scale) + 2^(bits-1), two per byte at 4 bits; ``src`` is zero past its end. With
    ``error`` (like ``src``, or None), error = v - the coded value (error feedback)."""
    _ops.quantize(src, error, payload, scales, bits, chunk)


def dequantize(payload, scales, out, bits, chunk, scale=1.0, accumulate=False):
    """The reverse of quantize: ``out = scale * decoded`` (``+=`` with ``accumulate``) for
    ``out.numel()`` elements."""
    _ops.dequantize(payload, scales, out, bits, chunk, scale, accumulate)


def topk_value_bytes(k, bits):
    """Bytes of one chunk's values for ``topk_encode``: k float32 at 32 bits, else k codes of
    ``bits`` packed (ceil(k * bits / 8))."""
    return 4 * k if bits == 32 else (k * bits + 7) // 8


def topk_encode(src, error, scales, positions, codes, bits, chunk, k):
    """Per chunk of ``chunk`` elements of float32 ``src`` (+ ``error``; zero past its end) the k
    entries of largest magnitude (ties to the lower position; NaN above infinity above every
    finite value): their positions in the chunk, ascending (``positions``, int16, k a chunk) and
    their values (``codes``, uint8, ``topk_value_bytes(k, bits)`` a chunk): float32 at 32 bits;
    else codes of ``bits`` (1, 2, 4, 8) with ``scales`` (one float32 a chunk): at 2 to 8 bits
    round(v / s) + L with s = max |v| / L, L = 2^(bits-1) - 1; at 1 bit the sign with s = mean
    |v|. With ``error`` (like ``src``, or None): error = input - the decoded value sent
    (error feedback)."""
    _ops.topk_encode(src, error, scales, positions, codes, bits, chunk, k)


def topk_decode(scales, positions, codes, out, bits, chunk, k, scale=1.0, accumulate=False):
    """The reverse of topk_encode: ``out = scale * decoded`` at the sent positions and zero
    elsewhere (``+=`` at the sent positions with ``accumulate``), for ``out.numel()`` elements."""
    _ops.topk_decode(scales, positions, codes, out, bits, chunk, k, scale, accumulate)
