"""The critical batch of the text task measured directly, against the advisor's estimate of it.

    python -m benchmarks.science.critical_batch --json docs/results/critical_batch.json

Measured: the fewest steps to a training loss (--target) at each global batch of --batches, the
learning rate chosen per batch from a grid (plain SGD, one process: tasks.train), and the
fit S(B) = S_min (1 + B_crit/B) (McCandlish et al. 2018; the same curve as
(S/S_min - 1)(E/E_min - 1) = 1 with E = S B). Estimated: at each batch of --estimate-at, the best
run is repeated with GradientStats fed two half-batch gradients per step (two virtual ranks,
the optimizer's estimator, moving averages over about --window samples), and B_noise is read
along the path, at the target last (--reuse keeps the stored steps and estimates again). The
text model is the one time_to_loss.py trains (models.TEXT_SHAPE). JSON + PNG.
"""
import argparse
import json
import math
import os

import horovod.torch as hvd
import numpy as np
import torch

import horovod_ext as hvd_ext
from benchmarks.models import TEXT_SHAPE
from benchmarks.science.training import write_results
from benchmarks.tasks import best, fit_both, task, train
from horovod_ext.runtime.progress import progress


def measure(t, batches, lrs, target, samples):
    rows = []
    for b in progress(batches, "batch sizes"):
        runs = [dict(train(t, b, lr, 0, samples, target=target), lr=lr) for lr in lrs]
        chosen = best(runs, "steps")
        rows.append({"batch": b, "steps": chosen and chosen["steps"], "lr": chosen and chosen["lr"],
                     "all": [{"lr": r["lr"], "steps": r["steps"]} for r in runs]})
    return rows


def estimate(t, row, target, samples, window):
    """The advisor's estimate along the best run at ``row``'s batch: B_noise with moving
    averages over about ``window`` samples (decay exp(-batch / window) per step)."""
    ema = math.exp(-row["batch"] / window)
    stats = hvd_ext.GradientStats(batch_size=row["batch"] // 2, ema=ema)
    stats.attach(2)
    run = train(t, row["batch"], row["lr"], 0, samples, target=target, stats=stats)
    h = stats.history
    return {"batch": row["batch"], "lr": row["lr"], "steps": run["steps"], "ema": ema,
            "noise_scale": stats.noise_scale, "critical_batch": stats.critical_batch,
            "along": [{"step": e["step"], "noise_scale": e["noise_scale"], "g2": e["g2"],
                       "trace": e["trace"]} for e in h]}


def plot(out, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = [r for r in out["rows"] if r["steps"]]
    bs, steps = np.array([r["batch"] for r in ok]), np.array([r["steps"] for r in ok])
    s_min, b_crit = out["fit"]["s_min"], out["fit"]["b_crit"]
    fig, (a, c) = plt.subplots(1, 2, figsize=(12, 4.5))
    grid = np.logspace(np.log10(bs.min()), np.log10(bs.max()), 100)
    a.plot(bs, steps, "o", label="measured (best learning rate)")
    a.plot(grid, s_min * (1 + b_crit / grid), "-", label=f"fit S_min (1 + B_crit/B), B_crit = {b_crit:.3g}")
    for e in out["estimates"]:
        a.axvline(e["critical_batch"], ls="--", color="C2", alpha=0.6)
    a.plot([], [], ls="--", color="C2", label="advisor: B_noise at the target, per batch run")
    a.set(xscale="log", yscale="log", xlabel="global batch B",
          ylabel=f"steps to training loss {out['target']}")
    a.legend(fontsize=7)
    for i, e in enumerate(out["estimates"]):
        x = [p["step"] / e["steps"] for p in e["along"]]
        c.plot(x, [p["noise_scale"] for p in e["along"]], "-", color=f"C{i}",
               label=f"batch {e['batch']} (moving averages over {-e['batch'] / math.log(e['ema']):.0f} samples)")
    c.axhspan(b_crit / 1.5, b_crit * 1.5, color="gray", alpha=0.2, label="measured B_crit, x/1.5")
    c.set(xlabel="fraction of the steps to the target", ylabel="estimate (samples)", yscale="log")
    c.legend(fontsize=7)
    fig.suptitle(f"text model ({TEXT_SHAPE['hidden_layers']} x {TEXT_SHAPE['width']} tanh), one "
                 f"process, SGD: critical batch measured and estimated")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="8,16,32,64,128,256,512")
    p.add_argument("--lrs", default="0.1,0.2,0.4,0.8,1.6")
    p.add_argument("--estimate-at", default="16,64,256", help="batches to estimate at")
    p.add_argument("--target", type=float, default=2.3, help="training loss (nats)")
    p.add_argument("--samples", type=int, default=150_000, help="the most samples a run trains")
    p.add_argument("--window", type=float, default=1600,
                   help="samples the estimate's moving averages cover (decay exp(-B/window))")
    p.add_argument("--reuse", action="store_true",
                   help="the steps to target from --json as stored; estimate only")
    p.add_argument("--json", required=True)
    args = p.parse_args()
    hvd.init()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    t = task("chars", **TEXT_SHAPE)
    if args.reuse:
        with open(args.json) as f:
            rows = json.load(f)["rows"]
    else:
        rows = measure(t, [int(b) for b in args.batches.split(",")],
                       [float(v) for v in args.lrs.split(",")], args.target, args.samples)
    ok = [r for r in rows if r["steps"]]
    s_min, b_crit = fit_both([r["batch"] for r in ok], [r["steps"] for r in ok])
    at = {int(b) for b in args.estimate_at.split(",")}
    estimates = [estimate(t, r, args.target, args.samples, args.window)
                 for r in ok if r["batch"] in at]
    out = {"target": args.target, "model": dict(TEXT_SHAPE), "optimizer": "SGD",
           "window": args.window,
           "rows": rows, "fit": {"s_min": s_min, "b_crit": b_crit}, "estimates": estimates}
    for e in estimates:
        print(f"batch {e['batch']}: B_noise at the target {e['critical_batch']:.4g}; "
              f"measured B_crit {b_crit:.4g}")
    write_results(out, args.json, plot)


if __name__ == "__main__":
    main()
