"""Kernel bandwidth: pack / unpack / pull / squared norm over realistic parameter lists, against
torch baselines and against one large copy of the same bytes measured in the same run.

    python benchmarks/kernels.py --json results/kernels.json      (CPU; --device cuda on a GPU)

GB/s counts the bytes each operation must read and write; "of copy" divides by the bandwidth of
one large ``dst.copy_(src)`` of the same size, timed right before each repetition of the
operation: memory bandwidth on a shared machine drifts by 20% or more within a minute, so the
ratio is the median of per-repetition ratios, not a ratio of medians. Medians of --repeats
timings after a warm-up.
"""
import argparse
import json
import os
import statistics
import time

import torch

from horovod_ext import ops
from horovod_ext.progress import progress


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


def timed(fn, sync):
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def paired(fn, copy, repeats, sync):
    """Per repetition: (seconds of fn, seconds of the reference copy run just before it)."""
    fn()
    copy()
    sync()
    return [(timed(copy, sync), timed(fn, sync))[::-1] for _ in range(repeats)]


def bench(name, shapes, device, repeats, sync):
    g = torch.Generator().manual_seed(0)
    ts = [torch.randn(s, generator=g).to(device) for s in shapes]
    numel = sum(t.numel() for t in ts)
    offsets, o = [], 0
    for t in ts:
        offsets.append(o)
        o += t.numel()
    flat = torch.empty(numel, device=device)
    half = torch.empty(numel, dtype=torch.float16, device=device)
    big_src, big_dst = torch.randn(numel, device=device), torch.empty(numel, device=device)
    out = torch.zeros(1, device=device)
    views = list(flat.split([t.numel() for t in ts]))
    fp32 = numel * 4
    cases = {  # name -> (function, bytes read + written)
        "copy (one large tensor)": (lambda: big_dst.copy_(big_src), 2 * fp32),
        "pack": (lambda: ops.pack(ts, flat, offsets, 0.5), 2 * fp32),
        "pack, cast to fp16": (lambda: ops.pack(ts, half, offsets, 0.5), fp32 + numel * 2),
        "unpack": (lambda: ops.unpack(flat, offsets, ts, 0.5, False), 2 * fp32),
        "pull": (lambda: ops.pull(ts, flat, offsets, 0.1), 3 * fp32),
        "squared norm": (lambda: ops.sq_norm(ts, out), fp32),
        "torch.cat + mul (pack)": (lambda: torch.cat([t.view(-1) for t in ts]).mul_(0.5), 3 * fp32),
        "per-tensor copy loop (unpack)": (lambda: [t.copy_(v.view_as(t)) for t, v in zip(ts, views)],
                                          2 * fp32),
        "torch._foreach_lerp_ (pull)": (lambda: torch._foreach_lerp_(ts, [v.view_as(t) for t, v in
                                                                           zip(ts, views)], 0.1),
                                        3 * fp32),
        "torch._foreach_norm (norm)": (lambda: torch._foreach_norm(ts), fp32),
    }
    rows = []
    copy_fn, copy_bytes = cases["copy (one large tensor)"]
    for case, (fn, nbytes) in cases.items():
        pairs = paired(fn, copy_fn, repeats, sync)
        sec = statistics.median(t for t, _ in pairs)
        rows.append({"op": case, "ms": sec * 1e3, "gb_per_s": nbytes / sec / 1e9,
                     "of_copy": statistics.median(nbytes / t / (copy_bytes / c) for t, c in pairs)})
    return {"params": name, "tensors": len(ts), "numel": numel, "rows": rows}


def plot(out, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(out["results"]), figsize=(6 * len(out["results"]), 4.2))
    for ax, res in zip(axes, out["results"]):
        ops = [r["op"] for r in res["rows"]]
        ax.barh(ops, [r["gb_per_s"] for r in res["rows"]],
                color=["k"] + ["#1f77b4"] * 5 + ["#888888"] * 4)
        ax.invert_yaxis()
        ax.set_xlabel("GB/s (bytes read + written)")
        ax.set_title(f"{res['params']}: {res['tensors']} tensors, {res['numel'] / 1e6:.1f}M "
                     f"fp32 ({out['config']['device']}, {out['config']['threads']} threads)",
                     fontsize=9)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--json", default="results/kernels.json")
    args = p.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    lists = {"ResNet-50": resnet50_shapes(), "transformer LM": transformer_shapes()}
    results = [bench(n, s, device, args.repeats, sync)
               for n, s in progress(lists.items(), "lists")]
    out = {"config": dict(vars(args), threads=torch.get_num_threads(), torch=torch.__version__),
           "results": results}
    for res in results:
        print(f"\n{res['params']}: {res['tensors']} tensors, {res['numel'] / 1e6:.1f}M elements")
        for r in res["rows"]:
            print(f"  {r['op']:32s} {r['ms']:8.2f} ms  {r['gb_per_s']:6.1f} GB/s  "
                  f"{r['of_copy']:5.2f} of copy")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    plot(out, os.path.splitext(args.json)[0] + ".png")


if __name__ == "__main__":
    main()
