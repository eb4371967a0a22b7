"""Kernels (pack, unpack, squared norm) against float64 torch references on random inputs; the
same routine runs on CPU and, where there is one, on a GPU."""
import math

import pytest
import torch

from horovod_ext import ops

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not (torch.cuda.is_available() and ops.with_cuda), reason="needs a GPU and the CUDA build"))]
SIZES = [[0], [1], [7], [100_003], [3, 0, 65_537, 1, 4_097], [1] * 300,
         [(i * 37) % 513 for i in range(300)]]
CAST = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def rand_tensors(sizes, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, generator=g, dtype=torch.float64) * 3).to(dtype).to(device)
            for n in sizes]


def layout(sizes, misalign):
    """Offsets of tensors packed back to back, each start shifted by `misalign` elements."""
    offsets, total = [], misalign
    for n in sizes:
        offsets.append(total)
        total += n + misalign
    return offsets, total


def expected_cast(x64, dtype):
    """The kernel computes in float (double when a side is float64) and rounds once on store."""
    if dtype == torch.float64:
        return x64
    return x64.float().to(dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: f"{len(s)}x{max(s)}")
@pytest.mark.parametrize("src_dtype, dst_dtype", [
    (torch.float32, torch.float32), (torch.float32, torch.float16),
    (torch.float32, torch.bfloat16), (torch.float64, torch.float64),
    (torch.float16, torch.float32), (torch.bfloat16, torch.bfloat16)])
@pytest.mark.parametrize("misalign", [0, 1])
def test_pack_unpack_roundtrip(device, sizes, src_dtype, dst_dtype, misalign):
    srcs = rand_tensors(sizes, src_dtype, device)
    offsets, total = layout(sizes, misalign)
    flat = torch.full((total,), -7.0, dtype=dst_dtype, device=device)
    scale = 0.37
    ops.pack(srcs, flat, offsets, scale)
    for s, o in zip(srcs, offsets):
        ref = (s.double() * scale)
        got = flat[o:o + s.numel()]
        # Bitwise: scale applied in the opmath type, one round to the destination.
        opmath = torch.float64 if torch.float64 in (src_dtype, dst_dtype) else torch.float32
        exact = (s.to(opmath) * scale).to(dst_dtype)
        torch.testing.assert_close(got, exact, rtol=0, atol=0)
        tol = {torch.float16: 1e-3, torch.bfloat16: 8e-3}.get(dst_dtype, 1e-6)
        torch.testing.assert_close(got.double(), ref, rtol=tol, atol=tol * 1e-3)
    # Elements between tensors are untouched.
    if misalign:
        assert (flat[offsets[0] - 1] == -7.0).item()
    # Unpack with accumulate back into tensors of the source dtype.
    dsts = rand_tensors(sizes, src_dtype, device, seed=1)
    before = [d.double().clone() for d in dsts]
    ops.unpack(flat, offsets, dsts, 2.0, True)
    for d, b, o, s in zip(dsts, before, offsets, srcs):
        ref = b + 2.0 * flat[o:o + s.numel()].double()
        tol = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}.get(src_dtype, 1e-6)
        torch.testing.assert_close(d.double(), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("device", DEVICES)
def test_unpack_overwrites_without_accumulate(device):
    flat = torch.arange(10, dtype=torch.float16, device=device)
    dsts = [torch.full((3,), 5.0, device=device), torch.full((4,), 5.0, device=device)]
    ops.unpack(flat, [1, 6], dsts, 0.5, False)
    assert dsts[0].tolist() == [0.5, 1.0, 1.5]
    assert dsts[1].tolist() == [3.0, 3.5, 4.0, 4.5]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", CAST)
def test_nan_inf_propagate(device, dtype):
    src = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0], dtype=torch.float32,
                       device=device)
    flat = torch.zeros(4, dtype=dtype, device=device)
    ops.pack([src], flat, [0], 2.0)
    out = flat.double().cpu()
    assert math.isnan(out[0]) and out[1] == math.inf and out[2] == -math.inf and out[3] == 2.0
    norm = torch.zeros(1, device=device)
    ops.sq_norm([src], norm)
    assert math.isnan(norm.item())


@pytest.mark.parametrize("device", DEVICES)
def test_half_conversions_match_torch_exhaustively(device):
    """Every fp16 and bf16 bit pattern to float32, and float32 values around every rounding edge
    (subnormals, ties, overflow to inf at 65520) to fp16/bf16, bitwise as torch converts."""
    patterns = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)
    for half in (torch.float16, torch.bfloat16):
        h = patterns.view(half).to(device)
        out = torch.empty(h.numel(), dtype=torch.float32, device=device)
        ops.unpack(h, [0], [out], 1.0, False)
        torch.testing.assert_close(out, h.float(), rtol=0, atol=0, equal_nan=True)
    g = torch.Generator().manual_seed(3)
    exps = torch.randint(-30, 20, (200_000,), generator=g).double()
    vals = torch.randn(200_000, generator=g, dtype=torch.float64) * torch.pow(2.0, exps)
    edges = torch.tensor([65504.0, 65519.99, 65520.0, 65536.0, 2.0 ** -14, 2.0 ** -24,
                          2.0 ** -25, 3 * 2.0 ** -25, 2.0 ** -14 - 2.0 ** -25, 1 + 2.0 ** -11,
                          1 + 3 * 2.0 ** -11, 0.0, -0.0], dtype=torch.float64)
    src = torch.cat([vals, edges, -edges]).float().to(device)
    for half in (torch.float16, torch.bfloat16):
        flat = torch.empty(src.numel(), dtype=half, device=device)
        ops.pack([src], flat, [0], 1.0)
        assert torch.equal(flat.view(torch.int16), src.to(half).view(torch.int16))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: f"{len(s)}x{max(s)}")
@pytest.mark.parametrize("dtype", CAST)
def test_sq_norm(device, sizes, dtype):
    ts = rand_tensors(sizes, dtype, device)
    out = torch.full((1,), -1.0, device=device)
    ops.sq_norm(ts, out)
    ref = sum((t.double() ** 2).sum().item() for t in ts)
    assert out.item() == pytest.approx(ref, rel=1e-5, abs=1e-30)


def test_sq_norm_of_nothing_is_zero():
    out = torch.full((1,), -1.0)
    ops.sq_norm([], out)
    assert out.item() == 0.0


def test_bad_inputs_raise_clear_errors():
    flat = torch.zeros(10)
    with pytest.raises(ValueError, match=r"srcs\[1\] is not contiguous"):
        ops.pack([torch.zeros(2), torch.zeros(4, 2).t()], flat, [0, 2], 1.0)
    with pytest.raises(ValueError, match=r"offsets\[0\] = 8 with 4 elements does not fit"):
        ops.pack([torch.zeros(4)], flat, [8], 1.0)
    with pytest.raises(ValueError, match=r"offsets\[0\] = -1"):
        ops.pack([torch.zeros(4)], flat, [-1], 1.0)
    with pytest.raises(ValueError, match="offsets has 1 entries"):
        ops.pack([torch.zeros(1), torch.zeros(1)], flat, [0], 1.0)
    with pytest.raises(TypeError, match=r"srcs has dtype Int"):
        ops.pack([torch.zeros(2, dtype=torch.int32)], flat, [0], 1.0)
    with pytest.raises(TypeError, match=r"srcs\[1\] has dtype Double"):
        ops.pack([torch.zeros(2), torch.zeros(2, dtype=torch.float64)], flat, [0, 2], 1.0)
    with pytest.raises(ValueError, match="dst must be contiguous"):
        ops.pack([torch.zeros(2)], torch.zeros(10, 2).t()[0], [0], 1.0)
    with pytest.raises(ValueError, match=r"dsts\[0\] is not contiguous"):
        ops.unpack(flat, [0], [torch.zeros(3, 3).t()], 1.0, False)
    with pytest.raises(ValueError, match="out must be a contiguous float32"):
        ops.sq_norm([torch.zeros(2)], torch.zeros(1, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"tensors\[0\] is not contiguous"):
        ops.sq_norm([torch.zeros(3, 3).t()], torch.zeros(1))
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"srcs\[0\] is on cuda"):
            ops.pack([torch.zeros(2, device="cuda")], flat, [0], 1.0)
    else:
        with pytest.raises(ValueError, match=r"srcs\[0\] is on meta"):
            ops.pack([torch.zeros(2, device="meta")], flat, [0], 1.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: f"{len(s)}x{max(s)}")
@pytest.mark.parametrize("dtype", CAST)
def test_dc_compensate(device, sizes, dtype):
    """g += c * g * g * (w - w0), fused over every parameter of a bucket."""
    params = rand_tensors(sizes, dtype, device, seed=2)
    offsets, total = layout(sizes, 0)
    g = torch.cat([torch.zeros(0, dtype=dtype, device=device)] + rand_tensors([total], dtype, device, 3))
    w0 = torch.cat([torch.zeros(0, dtype=dtype, device=device)] + rand_tensors([total], dtype, device, 4))
    g64 = g.double().clone()
    ops.dc_compensate(g, params, w0, offsets, 0.25)
    for p, o in zip(params, offsets):
        sl = slice(o, o + p.numel())
        ref = g64[sl] + 0.25 * g64[sl] ** 2 * (p.double().flatten() - w0[sl].double())
        tol = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float32: 1e-6}.get(dtype, 1e-12)
        torch.testing.assert_close(g[sl].double(), ref, rtol=tol, atol=tol)


def test_dc_compensate_checks_its_operands():
    g, w0 = torch.zeros(4), torch.zeros(4)
    with pytest.raises(ValueError, match="snapshot must be a contiguous tensor like grad"):
        ops.dc_compensate(g, [torch.zeros(4)], torch.zeros(3), [0], 1.0)
    with pytest.raises(TypeError, match="snapshot has dtype Double but grad has dtype Float"):
        ops.dc_compensate(g, [torch.zeros(4)], w0.double(), [0], 1.0)
    with pytest.raises(ValueError, match=r"params\[0\] is not contiguous"):
        ops.dc_compensate(g, [torch.zeros(2, 2).t()], w0, [0], 1.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: f"{len(s)}x{max(s)}")
@pytest.mark.parametrize("dtype", CAST)
def test_pull_and_easgd(device, sizes, dtype):
    """pull: x -= lam (x - y); easgd: x -= a (x - c), c += a (S - n c), from one flat buffer."""
    offsets, total = layout(sizes, 1)
    flat = rand_tensors([total], dtype, device, 5)[0]
    xs = rand_tensors(sizes, dtype, device, 6)
    x64 = [x.double().clone() for x in xs]
    ops.pull(xs, flat, offsets, 0.3)
    tol = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float32: 1e-6}.get(dtype, 1e-12)
    for x, r, o in zip(xs, x64, offsets):
        y = flat[o:o + x.numel()].double()
        torch.testing.assert_close(x.double(), r - 0.3 * (r - y), rtol=tol, atol=tol)
    center = rand_tensors([total], dtype, device, 7)[0]
    c64, x64 = center.double().clone(), [x.double().clone() for x in xs]
    ops.easgd(xs, center, flat, offsets, 0.2, 3.0)
    for x, r, o in zip(xs, x64, offsets):
        sl = slice(o, o + x.numel())
        c, s = c64[sl], flat[sl].double()
        torch.testing.assert_close(x.double(), r - 0.2 * (r - c), rtol=tol, atol=tol)
        torch.testing.assert_close(center[sl].double(), c + 0.2 * (s - 3.0 * c), rtol=tol,
                                   atol=tol * 4)
    # Gaps between the tensors' slices of center are not touched.
    if offsets:
        assert center[offsets[0] - 1].double() == c64[offsets[0] - 1]


def test_pull_of_a_leader_onto_itself_is_exact():
    x = [torch.randn(1001)]
    flat = x[0].clone()
    ops.pull(x, flat, [0], 0.37)
    assert torch.equal(x[0], flat)


def test_pull_and_easgd_check_operands():
    with pytest.raises(TypeError, match="params have dtype Double but flat has dtype Float"):
        ops.pull([torch.zeros(2, dtype=torch.float64)], torch.zeros(2), [0], 0.5)
    with pytest.raises(ValueError, match="center must be a contiguous tensor like total"):
        ops.easgd([torch.zeros(2)], torch.zeros(3), torch.zeros(2), [0], 0.5, 2.0)
    with pytest.raises(ValueError, match=r"offsets\[0\] = 1 with 2 elements does not fit"):
        ops.pull([torch.zeros(2)], torch.zeros(2), [1], 0.5)
