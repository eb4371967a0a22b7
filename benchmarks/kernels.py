"""Kernel bandwidth: each operator of ``horovod_ext.ops`` against every torch way to compute the
same result, and against one large copy of the same bytes, measured in the same run.

    python -m benchmarks.kernels --json results/kernels.json      (CPU; --device cuda on a GPU)

Repetitions are interleaved: in each one, every case runs once, right after one large
``dst.copy_(src)`` of the operands' size (memory bandwidth on a shared machine drifts by 20% or
more within a minute, so each time is compared with a copy timed next to it). GB/s counts the
bytes a case must read and write. Per row: ``of_copy`` (bandwidth over the copy's) and, for ours,
``vs_torch`` (the fastest torch equivalent's time over ours); both are ratios of medians over the
repetitions with a 95% bootstrap interval over repetitions (``ratios.speedup``).
"""
import argparse
import json
import os
import statistics
import time

import torch

from benchmarks.charts import plot_kernels
from benchmarks.ratios import speedup
from benchmarks.record import stored_config
from horovod_ext import ops
from horovod_ext.runtime.progress import progress


def resnet50_shapes():
    """Parameter shapes of a ResNet-50 (conv weights, batch-norm weights and biases, fc)."""
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    cin = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            cout = width * 4
            for shape in ((width, cin, 1, 1), (width, width, 3, 3), (cout, width, 1, 1)):
                shapes += [shape, (shape[0],), (shape[0],)]
            if b == 0:
                shapes += [(cout, cin, 1, 1), (cout,), (cout,)]
            cin = cout
    return shapes + [(1000, 2048), (1000,)]


def transformer_shapes(layers=6, d=512, vocab=8192, ctx=512):
    """A decoder-only language model: embeddings, per layer attention + MLP + 2 layer norms."""
    shapes = [(vocab, d), (ctx, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d),
                   (4 * d,), (d, 4 * d), (d,)]
    return shapes + [(d,), (d,)]


def cases(shapes, device):
    """op -> (bytes read + written, our call, {torch equivalent: call}), every call computing the
    op's result from the same operands."""
    g = torch.Generator().manual_seed(0)
    rand = lambda s: torch.randn(s, generator=g).to(device)  # noqa: E731
    ts = [rand(s) for s in shapes]
    sizes = [t.numel() for t in ts]
    n = sum(sizes)
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    flat, center, total, half = rand(n), rand(n), rand(n), torch.empty(n, dtype=torch.half,
                                                                       device=device)
    views = [v.view_as(t) for v, t in zip(flat.split(sizes), ts)]
    hviews = [v.view_as(t) for v, t in zip(half.split(sizes), ts)]
    cviews = [v.view_as(t) for v, t in zip(center.split(sizes), ts)]
    sviews = [v.view_as(t) for v, t in zip(total.split(sizes), ts)]
    out = torch.zeros(1, device=device)
    f, h = 4 * n, 2 * n

    def foreach_dc():  # g += c * g * g * (w - w0): g the flat gradient's views, w0 a snapshot
        d = torch._foreach_sub(ts, cviews)
        torch._foreach_mul_(d, views)
        torch._foreach_mul_(d, views)
        torch._foreach_add_(views, d, alpha=0.1)

    def foreach_easgd():  # x -= a (x - c); c += a (S - n c), both from the old c
        dx = torch._foreach_sub(ts, cviews)
        dc = torch._foreach_sub(sviews, torch._foreach_mul(cviews, 3.0))
        torch._foreach_add_(ts, dx, alpha=-0.1)
        torch._foreach_add_(cviews, dc, alpha=0.1)

    chunk = 2048
    padded = -(-n // chunk) * chunk
    error, payload = rand(n) * 1e-3, torch.empty(padded, dtype=torch.uint8, device=device)
    scales, decoded = torch.empty(padded // chunk, device=device), torch.empty(n, device=device)

    def torch_quantize():  # the same math in torch ops: codes, scales and error
        v = torch.nn.functional.pad(flat + error, (0, padded - n)).view(-1, chunk)
        sc = v.abs().amax(dim=1) / 127
        q = torch.round(v / torch.where(sc > 0, sc, 1.0)[:, None]).clamp_(-127, 127)
        error.copy_((v - q * sc[:, None]).view(-1)[:n])
        payload.copy_((q + 128).view(-1))
        scales.copy_(sc)

    def torch_dequantize():
        decoded.copy_(((payload.float() - 128).view(-1, chunk) * scales[:, None]).view(-1)[:n])

    # top-k at density 1% in chunks of 4096, 2-bit values (the TopK codec's default)
    tk_chunk, tk_k = 4096, 41
    tk_chunks = -(-n // tk_chunk)
    tk_scales = torch.empty(tk_chunks, device=device)
    tk_pos = torch.empty(tk_chunks * tk_k, dtype=torch.int16, device=device)
    tk_codes = torch.empty(tk_chunks * ops.topk_value_bytes(tk_k, 2), dtype=torch.uint8,
                           device=device)
    tk_error = rand(n) * 1e-3

    def torch_topk_encode():  # the same math in torch ops: selection, codes, packing, error
        v = torch.nn.functional.pad(flat + tk_error, (0, tk_chunks * tk_chunk - n))
        v = v.view(tk_chunks, tk_chunk)
        idx = v.abs().topk(tk_k, dim=1, sorted=False).indices.sort(dim=1).values
        sel = v.gather(1, idx)
        sc = sel.abs().amax(dim=1)  # 2 bits: levels -1, 0, 1
        q = torch.round(sel / torch.where(sc > 0, sc, 1.0)[:, None]).clamp_(-1, 1)
        err = v.scatter(1, idx, sel - q * sc[:, None])
        tk_error.copy_(err.view(-1)[:n])
        codes = torch.nn.functional.pad((q + 1).to(torch.uint8), (0, (-tk_k) % 4))
        codes = codes.view(tk_chunks, -1, 4)
        tk_codes.copy_((codes[..., 0] | codes[..., 1] << 2 | codes[..., 2] << 4
                        | codes[..., 3] << 6).view(-1))
        tk_pos.copy_(idx.to(torch.int16).view(-1))
        tk_scales.copy_(sc)

    def torch_topk_decode():
        c = tk_codes.view(tk_chunks, -1)
        q = torch.stack([(c >> s) & 3 for s in (0, 2, 4, 6)], dim=2).view(tk_chunks, -1)
        vals = (q[:, :tk_k].float() - 1) * tk_scales[:, None]
        out = torch.zeros(tk_chunks, tk_chunk, device=device)
        out.scatter_(1, tk_pos.view(tk_chunks, tk_k).long(), vals)
        decoded.copy_(out.view(-1)[:n])

    return {
        "top-k 1%, 2-bit, error feedback": (
            12 * n, lambda: ops.topk_encode(flat, tk_error, tk_scales, tk_pos, tk_codes, 2,
                                            tk_chunk, tk_k),
            {"torch ops (topk, gather, scatter)": torch_topk_encode}),
        "top-k decode": (4 * n, lambda: ops.topk_decode(tk_scales, tk_pos, tk_codes, decoded, 2,
                                                        tk_chunk, tk_k),
                         {"torch ops (scatter)": torch_topk_decode}),
        "quantize to int8, error feedback": (
            13 * n, lambda: ops.quantize(flat, error, payload, scales, 8, chunk),
            {"torch ops": torch_quantize}),
        "dequantize int8": (5 * n, lambda: ops.dequantize(payload, scales, decoded, 8, chunk),
                            {"torch ops": torch_dequantize}),
        "pack": (2 * f, lambda: ops.pack(ts, flat, offsets, 0.5), {
            "torch.cat + mul": lambda: torch.cat([t.view(-1) for t in ts]).mul_(0.5),
            "per-tensor mul(out=view)": lambda: [torch.mul(t, 0.5, out=v) for t, v in zip(ts, views)],
            "_foreach_copy_ + mul_": lambda: (torch._foreach_copy_(views, ts), flat.mul_(0.5))}),
        "pack, cast to fp16": (f + h, lambda: ops.pack(ts, half, offsets, 0.5), {
            "per-tensor mul(out=fp16 view)": lambda: [torch.mul(t, 0.5, out=v)
                                                      for t, v in zip(ts, hviews)],
            "_foreach_copy_ (cast) + mul_": lambda: (torch._foreach_copy_(hviews, ts),
                                                     half.mul_(0.5)),
            "torch.cat + mul + .to(fp16)": lambda: torch.cat([t.view(-1) for t in ts]).mul_(0.5)
                                                        .to(torch.half)}),
        "unpack": (2 * f, lambda: ops.unpack(flat, offsets, ts, 0.5, False), {
            "per-tensor mul(out=tensor)": lambda: [torch.mul(v, 0.5, out=t) for t, v in zip(ts, views)],
            "_foreach_copy_ + _foreach_mul_": lambda: (torch._foreach_copy_(ts, views),
                                                       torch._foreach_mul_(ts, 0.5))}),
        "unpack, cast from fp16": (h + f, lambda: ops.unpack(half, offsets, ts, 0.5, False), {
            "per-tensor mul(out=tensor)": lambda: [torch.mul(v, 0.5, out=t) for t, v in zip(ts, hviews)],
            "_foreach_copy_ (cast) + _foreach_mul_": lambda: (torch._foreach_copy_(ts, hviews),
                                                              torch._foreach_mul_(ts, 0.5))}),
        "pull": (3 * f, lambda: ops.pull(ts, flat, offsets, 0.1), {
            "_foreach_lerp_": lambda: torch._foreach_lerp_(ts, views, 0.1),
            "per-tensor lerp_": lambda: [t.lerp_(v, 0.1) for t, v in zip(ts, views)]}),
        "squared norm": (f, lambda: ops.sq_norm(ts, out), {
            "_foreach_norm": lambda: torch.stack(torch._foreach_norm(ts)).square().sum(),
            "per-tensor vdot": lambda: sum(torch.vdot(t.view(-1), t.view(-1)) for t in ts)}),
        "delay compensation": (4 * f, lambda: ops.dc_compensate(flat, ts, center, offsets, 0.1), {
            "_foreach_ ops": foreach_dc}),
        "easgd": (5 * f, lambda: ops.easgd(ts, center, total, offsets, 0.1, 3.0), {
            "_foreach_ ops": foreach_easgd}),
    }, n


def timed(fn, sync):
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def bench(name, shapes, device, repeats, sync):
    table, n = cases(shapes, device)
    src, dst = torch.randn(n, device=device), torch.empty(n, device=device)
    copy = lambda: dst.copy_(src)  # noqa: E731
    calls = {(op, impl): fn for op, (_, ours, peers) in table.items()
             for impl, fn in [("ours", ours)] + list(peers.items())}
    for fn in calls.values():  # warm-up
        fn()
    times = {key: [] for key in calls}
    copies = {key: [] for key in calls}
    for _ in progress(range(repeats), f"{name} repetitions"):
        for key, fn in calls.items():
            copies[key].append(timed(copy, sync))
            times[key].append(timed(fn, sync))
    rows = []
    for op, (nbytes, _, peers) in table.items():
        fastest = min(peers, key=lambda impl: statistics.median(times[(op, impl)]))
        for impl in ["ours"] + list(peers):
            t, c = times[(op, impl)], copies[(op, impl)]
            # bandwidth over the copy's (8n bytes) = (nbytes / 8n) * copy time / our time
            ratio, ci = speedup(c, t)
            row = {"op": op, "impl": impl, "ms": statistics.median(t) * 1e3,
                   "gb_per_s": nbytes / statistics.median(t) / 1e9,
                   "of_copy": ratio * nbytes / (8 * n),
                   "of_copy_ci95": [x * nbytes / (8 * n) for x in ci]}
            if impl == "ours":
                row["vs_torch"], row["vs_torch_ci95"] = speedup(times[(op, fastest)], t)
                row["fastest_torch"] = fastest
            rows.append(row)
    copy_s = statistics.median(x for c in copies.values() for x in c)
    return {"params": name, "tensors": len(shapes), "numel": n,
            "copy_gb_per_s": 8 * n / copy_s / 1e9, "rows": rows}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=10, help="interleaved repetitions (>= 8)")
    p.add_argument("--json", default="results/kernels.json")
    args = p.parse_args()
    if args.repeats < 2:
        p.error("--repeats must be at least 2 (intervals need repetitions)")
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    lists = {"ResNet-50": resnet50_shapes(), "transformer LM": transformer_shapes()}
    results = [bench(n, s, device, args.repeats, sync) for n, s in lists.items()]
    out = {"config": stored_config(args, threads=torch.get_num_threads(), torch=torch.__version__,
                          cpu_isa=ops.cpu_isa()),
           "results": results}
    for res in results:
        print(f"\n{res['params']}: {res['tensors']} tensors, {res['numel'] / 1e6:.1f}M elements, "
              f"copy {res['copy_gb_per_s']:.1f} GB/s")
        for r in res["rows"]:
            vs = (f"  {r['vs_torch']:.2f}x [{r['vs_torch_ci95'][0]:.2f}, {r['vs_torch_ci95'][1]:.2f}]"
                  f" vs {r['fastest_torch']}" if r["impl"] == "ours" else "")
            print(f"  {r['op']:24s} {r['impl']:38s} {r['ms']:8.2f} ms {r['gb_per_s']:6.1f} GB/s "
                  f"{r['of_copy']:5.2f} of copy{vs}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    plot_kernels(out, os.path.splitext(args.json)[0] + ".png")


if __name__ == "__main__":
    main()
