"""Plots of diloco_text.py's results: validation loss against steps and against bytes per rank,
or, for a grid of DiLoCo outer settings, the best validation loss per (outer_lr, momentum).
``python -m benchmarks.replot`` redraws them from the stored JSON.
"""
import re

from benchmarks.labels import label

OUTER = re.compile(r"diloco_H\d+_o(?P<lr>[\d.]+)_m(?P<mu>[\d.]+)")


def plot(out, png):
    """A heatmap when every method is a DiLoCo outer setting (at least 4), else the curves."""
    import matplotlib
    matplotlib.use("Agg")
    grid = [OUTER.fullmatch(name) for name in out["methods"]]
    if len(grid) >= 4 and all(grid):
        outer_heatmap(out, grid, png)
    else:
        curves(out, png)


def title(out):
    layers = out.get("hidden_layers", 1)
    return (f"{out['ranks']} ranks, AdamW, {out['steps']} steps x batch {out['batch']} per rank, "
            f"char-level LM ({layers} hidden layer{'s' if layers > 1 else ''}); any link (loss per "
            f"step and per byte do not depend on it)")


def curves(out, png):
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, r in out["methods"].items():
        steps, val, sent = list(zip(*r["runs"][0]["curve"]))[:3]
        line, = a.plot(steps, val, label=label(name))
        if r["runs"][0]["bytes"] is not None:  # a peer whose bytes are not counted: steps only
            b.plot([s / 1e6 for s in sent], val, color=line.get_color())
    a.set(xlabel="step", ylabel="validation loss (nats/char)", title="loss against steps")
    b.set(xlabel="MB sent per rank", ylabel="validation loss", xscale="symlog",
          title="loss against bytes")
    for ax in (a, b):
        ax.set_ylim(top=max(r["runs"][0]["curve"][1][1] for r in out["methods"].values()))
        ax.grid(alpha=0.3)
    a.legend(fontsize=8)
    fig.suptitle(title(out))
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def outer_heatmap(out, grid, png):
    import matplotlib.pyplot as plt
    lrs = sorted({float(m["lr"]) for m in grid})
    mus = sorted({float(m["mu"]) for m in grid})
    best = {(float(m["lr"]), float(m["mu"])): r["runs"][0]["val"]  # at its best inner lr
            for m, r in zip(grid, out["methods"].values())}
    cells = [[best.get((lr, mu), float("nan")) for lr in lrs] for mu in mus]
    fig, ax = plt.subplots(figsize=(1.4 * len(lrs) + 2.5, 0.7 * len(mus) + 2))
    image = ax.imshow(cells, cmap="viridis_r", aspect="auto", origin="lower")
    for i, row in enumerate(cells):
        for j, v in enumerate(row):
            local = (lrs[j], mus[i]) == (1.0, 0.0)  # outer_lr 1 without momentum is local SGD
            ax.text(j, i, f"{v:.3f}" + ("\n(local SGD)" if local else ""), ha="center",
                    va="center", color="k" if image.norm(v) < 0.5 else "w", fontsize=9)
    ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs])
    ax.set_yticks(range(len(mus)), [f"{v:g}" for v in mus])
    ax.set(xlabel="outer_lr", ylabel="outer_momentum (Nesterov)")
    fig.colorbar(image, label="validation loss at the end (best inner lr)")
    ax.set_title(title(out), fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
