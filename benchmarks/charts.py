"""The picture of one throughput run (throughput.py). Left: each optimizer's speedup over the
fastest peer with its 95% interval (points on a scale around 1, so a 2% difference shows).
Right: its median step time with the rounds' range, on an axis that starts near the fastest
step, and the two bounds."""

PEER_COLOR = "#777777"
OURS_COLOR = "#1f77b4"


def title(out):
    """Model, ranks, link rate and batch: every figure of a run names them."""
    c = out["config"]
    return (f"{c['model']}, {c['np']} ranks, {c.get('link') or 'unshaped loopback'}, batch "
            f"{c['batch_size']}/rank, {c['rounds']} rounds of {c['steps']} steps")



def plot_medians(out, path):
    """Runs stored with medians only (no rounds, so no intervals): each optimizer's median step
    and its ratio to Horovod's, on an axis that starts near the fastest step, and the bound."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    res = out["results"]
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.4 * len(res)))
    y = list(range(len(res)))[::-1]
    for yi, r in zip(y, res):
        ax.plot(r["step_ms"], yi, "o", color=OURS_COLOR if r["mode"] != "horovod" else PEER_COLOR)
        ax.annotate(f"{r['step_ms']:.0f} ms, {r['vs_horovod']:.2f}x Horovod", (r["step_ms"], yi),
                    xytext=(6, -3), textcoords="offset points", fontsize=7)
    ax.axvline(out["bound_ms"], color="k", ls="--", lw=1,
               label=f"max(T_compute {out['compute_ms']:.0f}, T_allreduce "
                     f"{out['allreduce_ms']:.0f} ms)")
    ax.set(yticks=y, xlabel="median step time (ms); no intervals: one median per optimizer stored")
    ax.set_yticklabels([r["mode"] for r in res], fontsize=8)
    ax.set_xlim(right=max(r["step_ms"] for r in res) * 1.25)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title(out), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot(out, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    res = out["results"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 0.8 + 0.42 * len(res)), sharey=True)
    y = list(range(len(res)))[::-1]
    colors = [OURS_COLOR if r["optimizer"] == "hvd_ext.DistributedOptimizer" else PEER_COLOR
              for r in res]
    for yi, r, col in zip(y, res, colors):
        lo, hi = r["vs_best_peer_ci95"]
        a.errorbar(r["vs_best_peer"], yi, xerr=[[r["vs_best_peer"] - lo], [hi - r["vs_best_peer"]]],
                   fmt="o", color=col, capsize=3)
        a.annotate(f"{r['vs_best_peer']:.2f}x [{lo:.2f}, {hi:.2f}]", (hi, yi),
                   xytext=(4, -3), textcoords="offset points", fontsize=7)
        b.errorbar(r["step_ms"], yi, xerr=[[r["step_ms"] - min(r["round_ms"])],
                                           [max(r["round_ms"]) - r["step_ms"]]],
                   fmt="s", color=col, capsize=3)
    a.axvline(1.0, color="k", lw=0.8)
    a.set(yticks=y, xlabel=f"speedup over the fastest peer ({out['best_peer']}), 95% interval")
    a.set_yticklabels([r["mode"] for r in res], fontsize=8)
    b.axvline(out["bound_ms"], color="k", ls="--", lw=1,
              label=f"max(T_compute {out['compute_ms']:.0f}, T_allreduce "
                    f"{out['allreduce_ms']:.0f} ms)")
    b.axvline(out["sync_bound_ms"], color="k", ls=":", lw=1,
              label=f"best exact-sync schedule {out['sync_bound_ms']:.0f} ms")
    b.set(xlabel="median step time (ms), rounds' range")
    b.legend(fontsize=7, loc="lower right")
    for ax in (a, b):
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(title(out) + " (grey: peers, blue: horovod_ext)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_soak(results, path, size, config):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in results.items():
        ax.plot([s["step"] for s in r["samples"]], [s["rss_mb"] for s in r["samples"]], label=name)
    ax.set_xlabel("steps after warm-up")
    ax.set_ylabel("RSS of rank 0 (MiB)")
    ax.set_title(f"Soak: MLP (width {config['width']}), {size} ranks, Gloo, batch "
                 f"{config['batch_size']}/rank: RSS of rank 0 per mode", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_kernels(out, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    res = out["results"]
    fig, axes = plt.subplots(1, len(res), figsize=(6.5 * len(res), 5), sharex=True)
    for ax, r in zip(axes, res):
        ours = [row for row in r["rows"] if row["impl"] == "ours"]
        best = [next(x for x in r["rows"] if x["op"] == row["op"] and x["impl"] == row["fastest_torch"])
                for row in ours]
        y = range(len(ours))
        for k, (rows, label, color) in enumerate([(ours, "horovod_ext", "#1f77b4"),
                                                  (best, "fastest torch equivalent", "#999999")]):
            err = [[row["of_copy"] - row["of_copy_ci95"][0] for row in rows],
                   [row["of_copy_ci95"][1] - row["of_copy"] for row in rows]]
            ax.barh([i + 0.4 * k for i in y], [row["of_copy"] for row in rows], height=0.4,
                    xerr=err, color=color, label=label, capsize=2)
        for i, row in zip(y, ours):
            ax.annotate(f"{row['vs_torch']:.2f}x torch", (row["of_copy_ci95"][1], i), fontsize=7,
                        xytext=(4, -2), textcoords="offset points")
        ax.set_yticks([i + 0.2 for i in y], [row["op"] for row in ours], fontsize=8)
        ax.invert_yaxis()
        ax.axvline(1.0, color="k", lw=1, ls="--")
        ax.set_xlabel("bandwidth / one large copy's (95% CI over repetitions)")
        c = out["config"]
        ax.set_title(f"{r['params']}: {r['tensors']} tensors, {r['numel'] / 1e6:.1f}M fp32; "
                     f"{c['device']}, {c['threads']} threads, {c['cpu_isa']}; copy "
                     f"{r['copy_gb_per_s']:.1f} GB/s", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
