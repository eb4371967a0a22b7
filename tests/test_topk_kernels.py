"""The top-k kernels against a float64 torch reference on random inputs: the selected positions
are torch.topk's by magnitude (ties to the lower position), the values decode to within half a
step (the codes' rounding) of the input, the error makes the coding lossless in sum (decoded +
error = input), at chunk edges, every bit width, empty inputs, NaN and infinity; and the
operators' checks."""
import pytest
import torch

from horovod_ext import ops
from horovod_ext.codecs.topk import _parts, layout, payload_bytes

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not (torch.cuda.is_available() and ops.with_cuda), reason="needs a GPU and the CUDA build"))]


def encode(v, err, density, bits, chunk, device):
    n = v.numel()
    c, k, chunks, *_ = layout(max(n, 1), density, bits, chunk)
    payload = torch.zeros(payload_bytes(max(n, 1), density, bits, chunk), dtype=torch.uint8,
                          device=device)
    error = None if err is None else err.clone().to(device)
    parts = _parts(payload, max(n, 1), density, bits, chunk)
    ops.topk_encode(v.to(device), error, *parts, bits, c, k)
    return parts, error, (c, k, chunks)


def reference_positions(u, c, k, chunks):
    """Per chunk the k positions of largest |u| (ties: lower position first), ascending."""
    padded = torch.zeros(chunks * c, dtype=torch.float64)
    padded[:u.numel()] = u
    mags = padded.abs().view(chunks, c)
    # lexicographic (-|u|, position): a stable sort on |u| descending keeps lower positions first
    order = torch.sort(mags, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.sort(order, dim=1).values


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bits", [1, 2, 4, 8, 32])
@pytest.mark.parametrize("n, density, chunk", [(1, 0.5, 8), (1000, 0.1, 256), (4096, 0.01, 4096),
                                               (10_001, 0.03, 2048), (777, 1.0, 64),
                                               (5, 0.2, 3)])
def test_topk_matches_reference(device, bits, n, density, chunk):
    g = torch.Generator().manual_seed(n + bits)
    src = torch.randn(n, generator=g) * torch.pow(10.0, torch.randint(-3, 3, (n,), generator=g))
    err = torch.randn(n, generator=g) * 1e-2
    if n > 100:
        src[:chunk // 2] = 0.0  # ties at zero: lower positions first
        err[:chunk // 2] = 0.0
    u = src + err  # the kernels add in float32, as here
    (scales, positions, codes), error, (c, k, chunks) = encode(src, err, density, bits, chunk,
                                                               device)
    want = reference_positions(u.double(), c, k, chunks)
    assert torch.equal(positions.cpu().long().view(chunks, k), want)
    out = torch.full((n,), 7.0, device=device)
    ops.topk_decode(scales, positions, codes, out, bits, c, k)
    out = out.cpu().double()
    sel = torch.zeros(chunks * c, dtype=torch.bool)
    sel[(want + torch.arange(chunks)[:, None] * c).view(-1)] = True
    sel = sel[:n]
    assert (out[~sel] == 0).all()
    ud = u.double()
    if bits == 32:
        assert torch.equal(out[sel], ud[sel])
    elif bits == 1:
        mags = torch.zeros(chunks * c, dtype=torch.float64)
        mags[:n] = ud.abs()
        mean = mags[(want + torch.arange(chunks)[:, None] * c)].mean(dim=1)
        per = mean.repeat_interleave(c)[:n][sel]
        torch.testing.assert_close(out[sel], torch.where(ud[sel] >= 0, per, -per), rtol=1e-6,
                                   atol=0)
    else:
        step = scales.cpu().double().repeat_interleave(c)[:n][sel]
        assert ((out[sel] - ud[sel]).abs() <= step / 2 * (1 + 1e-6)).all()
    # error feedback: what was not sent is kept, exactly
    torch.testing.assert_close(out + error.cpu().double(), ud, rtol=0, atol=1e-6 * ud.abs().max())
    # accumulate and scale touch the sent positions only
    before = torch.full((n,), 3.0, device=device)
    ops.topk_decode(scales, positions, codes, before, bits, c, k, 0.5, True)
    torch.testing.assert_close(before.cpu().double(), 3.0 + 0.5 * out, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_nan_and_infinity_are_selected_first(device):
    v = torch.tensor([1.0, float("inf"), -2.0, float("nan"), 0.5, -float("inf"), 3.0, 0.0])
    (scales, positions, codes), _, (c, k, _) = encode(v, None, 0.5, 32, 8, device)
    assert positions.cpu().tolist() == [1, 3, 5, 6]  # NaN > inf > every finite magnitude


def test_without_error_feedback_empty_and_checks():
    src = torch.randn(10)
    (scales, positions, codes), error, (c, k, _) = encode(src, None, 0.2, 8, 10, "cpu")
    assert error is None and positions.tolist() == sorted(src.abs().topk(2).indices.tolist())
    out = torch.empty(0)
    ops.topk_decode(torch.zeros(0), torch.zeros(0, dtype=torch.int16),
                    torch.zeros(0, dtype=torch.uint8), out, 8, 4, 1)  # nothing to do
    with pytest.raises(ValueError, match="bits must be 1, 2, 4, 8 or 32"):
        ops.topk_encode(src, None, scales, positions, codes, 3, c, k)
    with pytest.raises(ValueError, match="k must be in"):
        ops.topk_encode(src, None, scales, positions, codes, 8, c, 11)
    with pytest.raises(ValueError, match="codes must hold 2 bytes"):
        ops.topk_encode(src, None, scales, positions, torch.zeros(3, dtype=torch.uint8), 8, c, k)
    with pytest.raises(ValueError, match="src has 10 elements, more than the 5"):
        ops.topk_encode(src, None, scales, positions, codes, 8, 5, k)
    with pytest.raises(TypeError, match="positions must be int16"):
        ops.topk_encode(src, None, scales, positions.int(), codes, 8, c, k)
    with pytest.raises(ValueError, match="error must have src's 10 elements"):
        ops.topk_encode(src, torch.zeros(3), scales, positions, codes, 8, c, k)


def test_opcheck():
    src, err = torch.randn(300), torch.randn(300)
    (scales, positions, codes), _, (c, k, _) = encode(src, err, 0.1, 4, 128, "cpu")
    torch.library.opcheck(torch.ops.hvd_ext.topk_encode,
                          (src, err.clone(), scales, positions, codes, 4, c, k))
    torch.library.opcheck(torch.ops.hvd_ext.topk_decode,
                          (scales, positions, codes, torch.zeros(300), 4, c, k, 1.0, False))
