"""The picture of one throughput run (throughput.py): each optimizer's median step time, the
spread of its rounds, its speedup over the fastest peer with the 95% interval, and the two bounds."""

PEER_COLOR = "#999999"
OURS_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def plot(out, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    res = out["results"]
    fig, ax = plt.subplots(figsize=(1.3 * len(res) + 2.5, 4))
    ours = iter(OURS_COLORS * 3)
    colors = [PEER_COLOR if r["optimizer"] != "hvd_ext.DistributedOptimizer" else next(ours)
              for r in res]
    x = range(len(res))
    steps = [r["step_ms"] for r in res]
    spread = [[s - min(r["round_ms"]) for s, r in zip(steps, res)],
              [max(r["round_ms"]) - s for s, r in zip(steps, res)]]
    ax.bar(x, steps, color=colors, yerr=spread, capsize=3, ecolor="#444444")
    for i, r in enumerate(res):
        lo, hi = r["vs_best_peer_ci95"]
        ax.annotate(f"{r['vs_best_peer']:.2f}x\n[{lo:.2f}, {hi:.2f}]", (i, max(r["round_ms"])),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), [r["mode"] for r in res], rotation=20, fontsize=8)
    ax.axhline(out["bound_ms"], color="k", ls="--", lw=1,
               label=f"max(T_compute {out['compute_ms']:.0f}, T_allreduce "
                     f"{out['allreduce_ms']:.0f}) = {out['bound_ms']:.0f} ms")
    ax.axhline(out["sync_bound_ms"], color="k", ls=":", lw=1,
               label=f"best exact-sync schedule {out['sync_bound_ms']:.0f} ms")
    c = out["config"]
    ax.set_ylabel("median step time (ms); bars: rounds' range")
    ax.set_title(f"{c['model']}, {c['np']} ranks, {c.get('link', 'link not recorded')}, batch "
                 f"{c['batch_size']}/rank; speedup over "
                 f"the fastest peer ({out['best_peer']}), 95% CI", fontsize=9)
    ax.set_ylim(0, max(max(r["round_ms"]) for r in res) * 1.35)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
