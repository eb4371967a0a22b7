"""The quantization kernels against torch references on random inputs: codes, scales and error
bitwise against the same math in float32 torch ops, every decoded value within half a step of
its input (float64), and the error making the coding lossless in sum (decoded + error = input)."""
import pytest
import torch

from horovod_ext import ops

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not (torch.cuda.is_available() and ops.with_cuda), reason="needs a GPU and the CUDA build"))]


def reference(v, bits, chunk, chunks):
    """(codes 0..2L as uint8, scales, decoded) of v (zero-padded to chunks * chunk)."""
    levels = 2 ** (bits - 1) - 1
    x = torch.zeros(chunks * chunk, dtype=torch.float32)
    x[:v.numel()] = v
    xc = x.view(chunks, chunk)
    scale = xc.abs().amax(dim=1) / levels
    q = torch.round(xc / torch.where(scale > 0, scale, 1.0)[:, None]).clamp_(-levels, levels)
    return (q + levels + 1).to(torch.uint8).view(-1), scale, (q * scale[:, None]).view(-1)


def packed(codes, bits):
    return codes if bits == 8 else codes[0::2] | (codes[1::2] << 4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("n, chunk", [(0, 8), (1, 8), (1000, 16), (4096, 4096), (10_001, 2048),
                                      (777, 64)])
def test_quantize_matches_reference(device, bits, n, chunk):
    g = torch.Generator().manual_seed(n + bits)
    src = torch.randn(n, generator=g) * torch.pow(10.0, torch.randint(-6, 3, (n,), generator=g))
    err = torch.randn(n, generator=g) * 1e-3
    if n > 100:
        src[50:50 + chunk // 2] = 0.0  # a (partly) zero chunk
        err[50:50 + chunk // 2] = 0.0
    chunks = max(1, -(-n // chunk))
    payload = torch.zeros(chunks * chunk * bits // 8, dtype=torch.uint8, device=device)
    scales = torch.zeros(chunks, device=device)
    error = err.clone().to(device)
    ops.quantize(src.to(device), error, payload, scales, bits, chunk)
    codes, want_scales, decoded = reference(src + err, bits, chunk, chunks)
    assert torch.equal(scales.cpu(), want_scales)
    assert torch.equal(payload.cpu(), packed(codes, bits))
    assert torch.equal(error.cpu(), (src + err) - decoded[:n])
    # Decoded within half a step of the input, in float64.
    out = torch.full((n,), 7.0, device=device)
    ops.dequantize(payload, scales, out, bits, chunk)
    step = want_scales.double().repeat_interleave(chunk)[:n]
    assert ((out.cpu().double() - (src + err).double()).abs() <= step / 2 * (1 + 1e-6)).all()
    # accumulate and scale
    before = out.clone()
    ops.dequantize(payload, scales, out, bits, chunk, 0.5, True)
    torch.testing.assert_close(out, before + 0.5 * before, rtol=1e-6, atol=0)


def test_without_error_feedback_and_checks():
    src = torch.randn(10)
    payload, scales = torch.zeros(16, dtype=torch.uint8), torch.zeros(1)
    ops.quantize(src, None, payload, scales, 8, 16)
    assert scales.item() == pytest.approx(src.abs().max().item() / 127)
    with pytest.raises(ValueError, match="bits must be 8 or 4"):
        ops.quantize(src, None, payload, scales, 2, 16)
    with pytest.raises(ValueError, match="payload must hold 8 bytes"):
        ops.quantize(src, None, payload, scales, 4, 16)
    with pytest.raises(ValueError, match="src has 10 elements, more than the 8"):
        ops.quantize(src, None, torch.zeros(8, dtype=torch.uint8), scales, 8, 8)
    with pytest.raises(TypeError, match="src must be float32"):
        ops.quantize(src.double(), None, payload, scales, 8, 16)
    with pytest.raises(ValueError, match="error must have src's 10 elements"):
        ops.quantize(src, torch.zeros(3), payload, scales, 8, 16)
