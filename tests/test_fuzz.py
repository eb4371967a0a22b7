"""Property-based tests (hypothesis): the kernels against float64 references and the bucket plan
against its invariants, on random tensor counts, sizes (empty included), dtypes, offsets with
gaps, scales and caps. Examples are derandomized so a run is reproducible; for a long random
search: HYPOTHESIS_PROFILE=long pytest test_fuzz.py."""
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from horovod_ext import ops
from horovod_ext.codecs import codec_for
from horovod_ext.compression import Compression
from horovod_ext.engine.bucket import Bucket
from horovod_ext.engine.plan import plan_buckets

settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True)
settings.register_profile("long", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Relative error of one rounding to the dtype (opmath is float32, or float64 with a float64 side).
EPS = {torch.float64: 1e-15, torch.float32: 1.2e-7, torch.float16: 9.8e-4, torch.bfloat16: 7.9e-3}

sizes_st = st.lists(st.integers(0, 3000), min_size=0, max_size=40)
dtype_st = st.sampled_from(DTYPES)


def tensors(sizes, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, generator=g, dtype=torch.float64) * 4).to(dtype) for n in sizes]


def layout(sizes, gaps):
    offsets, total = [], 0
    for n, gap in zip(sizes, gaps):
        total += gap
        offsets.append(total)
        total += n
    return offsets, total + 3


def close(got, ref, dtype, rounds=1, mag=None):
    """|got - ref| within `rounds` roundings to dtype of `mag`, the magnitude of the terms the
    kernel adds (|ref| by default; larger where terms cancel)."""
    mag = ref.abs() if mag is None else mag
    err = (got.double() - ref).abs()
    bound = rounds * EPS[dtype] * (mag + 1e-3)
    bad = int((err > bound).sum())
    assert bad == 0, f"{bad} mismatches, worst {float((err - bound).max()):.3g} over the bound"


@given(sizes=sizes_st, src=dtype_st, dst=dtype_st, gaps=st.data(), seed=st.integers(0, 2**31),
       scale=st.floats(-8, 8, allow_nan=False), accumulate=st.booleans())
def test_pack_unpack(sizes, src, dst, gaps, seed, scale, accumulate):
    gap = gaps.draw(st.lists(st.integers(0, 5), min_size=len(sizes), max_size=len(sizes)))
    offsets, total = layout(sizes, gap)
    srcs = tensors(sizes, src, seed)
    flat = torch.full((total,), 11.0, dtype=dst)
    ops.pack(srcs, flat, offsets, scale)
    covered = torch.zeros(total, dtype=torch.bool)
    for s, o in zip(srcs, offsets):
        close(flat[o:o + s.numel()], s.double() * scale, dst, rounds=2)
        covered[o:o + s.numel()] = True
    assert bool((flat[~covered] == 11.0).all()), "pack wrote outside its slices"
    dsts = tensors(sizes, src, seed + 1)
    before = [d.double().clone() for d in dsts]
    ops.unpack(flat, offsets, dsts, 0.5, accumulate)
    for d, b, o in zip(dsts, before, offsets):
        f = 0.5 * flat[o:o + d.numel()].double()
        ref = f + (b if accumulate else 0.0)
        close(d, ref, src, rounds=2, mag=f.abs() + (b.abs() if accumulate else 0.0))


@given(sizes=sizes_st, dtype=dtype_st, seed=st.integers(0, 2**31))
def test_sq_norm(sizes, dtype, seed):
    ts = tensors(sizes, dtype, seed)
    out = torch.full((1,), -1.0)
    ops.sq_norm(ts, out)
    ref = sum(float((t.double() ** 2).sum()) for t in ts)
    assert out.item() == pytest.approx(ref, rel=2e-7, abs=1e-30)


@given(sizes=sizes_st, dtype=dtype_st, seed=st.integers(0, 2**31), lam=st.floats(0, 1),
       alpha=st.floats(0, 1), n=st.integers(1, 64), c=st.floats(0, 4))
def test_pull_easgd_dc_compensate(sizes, dtype, seed, lam, alpha, n, c):
    offsets, total = layout(sizes, [1] * len(sizes))
    flat = tensors([total], dtype, seed)[0]
    xs = tensors(sizes, dtype, seed + 1)
    x64 = [x.double().clone() for x in xs]
    ops.pull(xs, flat, offsets, lam)
    for x, r, o in zip(xs, x64, offsets):
        y = flat[o:o + x.numel()].double()
        close(x, r - lam * (r - y), dtype, rounds=4, mag=r.abs() + lam * (r.abs() + y.abs()))
    center = tensors([total], dtype, seed + 2)[0]
    c64, x64 = center.double().clone(), [x.double().clone() for x in xs]
    ops.easgd(xs, center, flat, offsets, alpha, float(n))
    for x, r, o in zip(xs, x64, offsets):
        sl = slice(o, o + x.numel())
        c0, total_sl = c64[sl], flat[sl].double()
        close(x, r - alpha * (r - c0), dtype, rounds=4, mag=r.abs() + alpha * (r.abs() + c0.abs()))
        close(center[sl], c0 + alpha * (total_sl - n * c0), dtype, rounds=4,
              mag=c0.abs() + alpha * (total_sl.abs() + n * c0.abs()))
    grad = tensors([total], dtype, seed + 3)[0]
    snap = tensors([total], dtype, seed + 4)[0]
    g64 = grad.double().clone()
    ops.dc_compensate(grad, xs, snap, offsets, c)
    for x, o in zip(xs, offsets):
        sl = slice(o, o + x.numel())
        w, w0 = x.double().flatten(), snap[sl].double()
        ref = g64[sl] + c * g64[sl] ** 2 * (w - w0)
        close(grad[sl], ref, dtype, rounds=8, mag=g64[sl].abs() + c * g64[sl] ** 2 * (w.abs() + w0.abs()))


@st.composite
def plans(draw):
    k = draw(st.integers(1, 60))
    numels = draw(st.lists(st.integers(0, 5000), min_size=k, max_size=k))
    sizes = draw(st.lists(st.sampled_from([2, 4, 8]), min_size=k, max_size=k))
    keys = [(s, draw(st.integers(0, 1))) for s in sizes]  # (element size, device) stand-ins
    order = draw(st.permutations(range(k)))
    cap = draw(st.integers(1, 40_000))
    first = draw(st.integers(1, 40_000))
    return numels, sizes, keys, order, cap, first


@given(plans())
def test_bucket_plan_invariants(plan):
    numels, sizes, keys, order, cap, first = plan
    buckets = plan_buckets(numels, sizes, keys, order, cap, first)
    flat = [i for b in buckets for i in b]
    assert sorted(flat) == list(range(len(numels))), "every tensor in exactly one bucket"
    position = {i: p for p, i in enumerate(order)}
    assert [position[b[0]] for b in buckets] == sorted(position[b[0]] for b in buckets)
    for key in set(keys):
        mine = [b for b in buckets if keys[b[0]] == key]
        # a key's buckets are its tensors in ready order, cut where the cap is reached
        assert [i for b in mine for i in b] == [i for i in order if keys[i] == key]
        for j, b in enumerate(mine):
            assert all(keys[i] == key for i in b)
            limit = first if j == 0 else cap
            nbytes = [numels[i] * sizes[i] for i in b]
            if j < len(mine) - 1:  # closed: reached its cap exactly at its last tensor
                assert sum(nbytes) >= limit > sum(nbytes[:-1])
            else:
                assert sum(nbytes[:-1]) < limit


@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=30), dtype=dtype_st,
       extra=st.integers(0, 2))
def test_bucket_layout(sizes, dtype, extra):
    params = [torch.nn.Parameter(torch.zeros(n, dtype=dtype)) for n in sizes]
    b = Bucket(0, params, codec_for(Compression.none), snapshot=False, extra=extra)
    assert b.flat.numel() == sum(sizes) + extra and b.grads.numel() == sum(sizes)
    for k, (p, v) in enumerate(zip(params, b.views)):
        assert v.shape == p.shape
        if p.numel():  # an empty view has no storage address
            assert v.data_ptr() == b.flat.data_ptr() + b.offsets[k] * b.flat.element_size()
    marks = torch.zeros(b.flat.numel(), dtype=torch.int32)
    for o, n in zip(b.offsets, sizes):
        marks[o:o + n] += 1
    assert bool((marks[:sum(sizes)] == 1).all()), "views tile the gradients without overlap"
