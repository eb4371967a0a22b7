"""What run.py --sweep leaves behind: sweep.json, sweep.png (speedup over the fastest peer with
its 95% interval, versus link rate, per model) and the README table on stdout."""
import json
import os

from benchmarks.ratios import cell


def report(runs, out_dir):
    """sweep.json and sweep.png in out_dir, and the README table on stdout."""
    with open(os.path.join(out_dir, "sweep.json"), "w") as f:
        json.dump(runs, f, indent=1)
    plot_sweep(runs, os.path.join(out_dir, "sweep.png"))
    modes = [r["mode"] for r in runs[0]["results"]]
    print("Each cell: median step, speedup over the fastest peer with its 95% bootstrap interval "
          "over rounds, efficiency against the best exact-sync schedule.")
    print("Headroom: the fastest peer's step over the exact-sync bound, the most any exact "
          "synchronous optimizer could gain on it.")
    print("| rate | model | ranks | T_compute | T_allreduce | exact-sync bound | headroom | "
          + " | ".join(modes) + " |")
    print("|---" * (7 + len(modes)) + "|")
    for r in runs:
        cells = [f"{x['step_ms']:.0f} ms, {cell(x['vs_best_peer'], x['vs_best_peer_ci95'])}, "
                 f"eff {x['sync_efficiency']:.2f}" for x in r["results"]]
        best = next(x["step_ms"] for x in r["results"] if x["mode"] == r["best_peer"])
        print(f"| {r['rate']} | {r['model']} | {r['np']} | {r['compute_ms']:.0f} ms | "
              f"{r['allreduce_ms']:.0f} ms | {r['sync_bound_ms']:.0f} ms | "
              f"{best / r['sync_bound_ms']:.2f}x | " + " | ".join(cells) + " |")


def plot_sweep(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = sorted({r["model"] for r in runs})
    rates = list(dict.fromkeys(r["rate"] for r in runs))
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        for n in sorted({r["np"] for r in runs}):
            sel = {r["rate"]: r for r in runs if r["model"] == model and r["np"] == n}
            for mode in [m["mode"] for m in runs[0]["results"]][1:]:
                xs = [rt for rt in rates if rt in sel]
                got = [next(x for x in sel[rt]["results"] if x["mode"] == mode) for rt in xs]
                ys = [x["vs_best_peer"] for x in got]
                err = [[y - x["vs_best_peer_ci95"][0] for y, x in zip(ys, got)],
                       [x["vs_best_peer_ci95"][1] - y for y, x in zip(ys, got)]]
                ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=3, label=f"{mode}, {n} ranks")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set(title=f"{model}, {'/'.join(str(n) for n in sorted({r['np'] for r in runs}))} ranks",
               xlabel="link rate (emulated)", ylabel="speedup over the fastest peer (95% CI)")
        ax.legend(fontsize=7)
    ymin = min(a.get_ylim()[0] for a in axes[0])  # one scale for every panel
    ymax = max(a.get_ylim()[1] for a in axes[0])
    for ax in axes[0]:
        ax.set_ylim(ymin, ymax)
    fig.suptitle("Our modes against the fastest peer (Horovod, tuned Horovod, DDP) per model and "
                 "link rate; 95% bootstrap intervals over rounds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
