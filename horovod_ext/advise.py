"""How many ranks, what batch, what learning rate, which mode and codec: advice from a run's
gradient statistics and a probe of its model and link.

    python -m horovod_ext.advise stats.json [--window 100] [--png advice.png]
    python -m horovod_ext.advise --trace trace.json [stats.json]

``trace.json`` is what ``hvd_ext.probe(...).save(path)`` writes; ``recommendation(trace)`` (or
``recommendation_text``) gives, for each mode and codec, the predicted step time, its steps to a
loss over exact sync's, and the one to use (horovod_ext.advisor.recommend says what each rests on).

``stats.json`` is what ``optimizer.gradient_stats.save(path)`` writes; in a running job,
``print(horovod_ext.advise.report(optimizer.gradient_stats))`` gives the same text. Every line
names the formula it uses (the documentation's Advisor page derives them):
B_noise (McCandlish et al. 2018), the step speed-up (1 + B_noise/b) / (1 + B_noise/(N b)),
learning rates proportional to 1/(1 + M/B) for batch B (M = B_noise) and to 1/(M + k) for
staleness k (M = B_noise / B, the noise scale in steps of the current global batch B).
"""
import argparse
import json
from typing import Any, Dict, List, Optional

import numpy as np

from horovod_ext.advisor.recommend import optimizer_kwargs, recommendation  # noqa: F401 (API)
from horovod_ext.advisor.recommend import report as _recommendation_report

RANKS = (1, 2, 4, 8, 16, 32, 64)
STALENESS = (0, 1, 2, 4, 8, 16)


def _as_dict(stats):
    if isinstance(stats, (str, bytes)) or hasattr(stats, "__fspath__"):
        with open(stats) as f:
            return json.load(f)
    if isinstance(stats, dict):
        return stats
    return stats.to_json()  # a GradientStats


def speedup(noise: float, b: int, n: int) -> float:
    """Predicted step speed-up of n ranks over one at per-rank batch b: steps to a target scale
    like S_min (1 + B_noise/B), so the ratio is (1 + B_noise/b) / (1 + B_noise/(n b))."""
    return (1 + noise / b) / (1 + noise / (n * b))


def summary(stats: Any, window: int = 100) -> Dict[str, Any]:
    """The numbers behind the report, as a dict."""
    d = _as_dict(stats)
    noise = d["noise_scale"]
    if noise is None or not noise > 0:
        raise ValueError("no finite positive noise scale yet: the run's mean-gradient estimate "
                         "is not above its noise; observe more steps (or a larger ema)")
    recent = [h["noise_scale"] for h in d["history"][-window:] if h["noise_scale"] is not None]
    b, n = d["batch_size"], d["ranks"]
    return {"noise_scale": noise, "window": len(recent),
            "median": float(np.median(recent)), "p10": float(np.percentile(recent, 10)),
            "p90": float(np.percentile(recent, 90)), "batch_size": b, "ranks": n,
            "staleness": d.get("staleness", 0), "steps": len(d["history"]),
            "speedup": {m: speedup(noise, b, m) for m in RANKS},
            "lr_batch": {m: (1 + noise / b) / (1 + noise / (m * b)) for m in RANKS},
            "delay_m": noise / (n * b),
            "lr_staleness": {k: (noise / (n * b)) / (noise / (n * b) + k) for k in STALENESS}}


def report(stats: Any, window: int = 100) -> str:
    """The advice as text (see the module docstring)."""
    s = summary(stats, window)
    noise, b, n = s["noise_scale"], s["batch_size"], s["ranks"]
    lines = [
        f"gradient statistics: {n} ranks x batch {b} per rank (global {n * b}), "
        f"{s['steps']} steps, staleness {s['staleness']}",
        f"B_noise = {noise:.4g} samples   [B_noise = EMA(tr S) / EMA(|G|^2), per-step unbiased "
        f"estimates from per-rank and averaged gradient norms; McCandlish et al. 2018, App. A]",
        f"  over the last {s['window']} steps: median {s['median']:.4g}, 10th-90th percentile "
        f"{s['p10']:.4g} to {s['p90']:.4g}",
        f"critical batch ~ {noise:.4g} samples   [B_crit ~ B_noise]; the current global batch "
        f"is {n * b / noise:.2g} x critical: "
        + ("more samples per step still cut the step count almost in proportion"
           if n * b < noise / 2 else "more samples per step buy few fewer steps"),
        f"step speed-up over 1 rank at {b} per rank   [S(N) = (1 + B_noise/b) / "
        f"(1 + B_noise/(N b)), steps to a target ~ S_min (1 + B_noise/B)]",
        "  ranks  global batch  speed-up  per-rank efficiency"]
    lines += [f"  {m:5d}  {m * b:12d}  {s['speedup'][m]:8.2f}  {s['speedup'][m] / m:19.2f}"
              for m in RANKS]
    lines += [f"learning rate for N ranks relative to 1 rank at {b} per rank   "
              f"[lr ~ 1/(1 + M/B), B = N b, M = B_noise]"]
    lines += ["  " + "  ".join(f"N={m}: x{s['lr_batch'][m]:.3g}" for m in RANKS)]
    lines += [f"learning rate for staleness k relative to k = 0   [lr ~ 1/(M + k), M = B_noise/B "
              f"= {s['delay_m']:.3g} steps at global batch B = {n * b}: critical delay ~ M; an "
              f"upper estimate: measured critical delays were 4-7x shorter]"]
    lines += ["  " + "  ".join(f"k={k}: x{s['lr_staleness'][k]:.3g}" for k in STALENESS)]
    return "\n".join(lines)


def plot(stats: Any, path: str, window: int = 100) -> None:
    """B_noise over the run and the predicted speed-up curve, as a PNG (needs matplotlib:
    ``pip install 'horovod_ext[plot]'``)."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("the advisor's plot needs matplotlib: pip install matplotlib (or "
                          "'horovod_ext[plot]'), or pass --no-plot") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    d, s = _as_dict(stats), summary(stats, window)
    steps = [h["step"] for h in d["history"] if h["noise_scale"] is not None]
    values = [h["noise_scale"] for h in d["history"] if h["noise_scale"] is not None]
    fig, (a, c) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(steps, values)
    a.axhline(s["noise_scale"], ls="--", color="gray")
    a.set(xlabel="step", ylabel="B_noise (samples)", yscale="log",
          title="noise scale: EMA(tr S) / EMA(|G|^2)")
    ranks = list(range(1, 65))
    c.plot(ranks, [speedup(s["noise_scale"], s["batch_size"], m) for m in ranks],
           label="predicted (1 + B/b) / (1 + B/(N b))")
    c.plot(ranks, ranks, ls=":", color="gray", label="linear")
    crit = s["noise_scale"] / s["batch_size"]
    if 1 <= crit <= 64:
        c.axvline(crit, ls="--", color="red", label=f"critical batch: N = {crit:.3g}")
    c.set(xlabel="ranks N", ylabel="step speed-up over 1 rank", xscale="log", yscale="log",
          title=f"per-rank batch b = {s['batch_size']}")
    c.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def recommendation_text(trace: Any, stats: Any = None) -> str:
    """The mode and codec to use, as text: ``recommendation`` of a probe's trace (a dict or the
    path of its JSON) and, optionally, the run's gradient statistics (default: the probe's)."""
    return _recommendation_report(recommendation(
        _as_dict(trace), None if stats is None else _as_dict(stats)))


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(prog="horovod-ext-advise", description=__doc__.split("\n")[0])
    ap.add_argument("stats", nargs="?", default=None,
                    help="JSON written by optimizer.gradient_stats.save(path)")
    ap.add_argument("--trace", default=None,
                    help="JSON written by hvd_ext.probe(...).save(path): recommend a mode")
    ap.add_argument("--window", type=int, default=100, help="steps for the spread of B_noise")
    ap.add_argument("--png", default=None, help="plot path (default: <stats>.png)")
    ap.add_argument("--no-plot", action="store_true", help="print the report only")
    args = ap.parse_args(argv)
    if args.window < 1:
        ap.error(f"--window must be >= 1; got {args.window}")
    for what, path in (("stats", args.stats), ("--trace", args.trace)):
        try:
            if path is not None:
                _as_dict(path)
        except (OSError, ValueError) as e:
            ap.error(f"{what}: cannot read {path!r}: {e}")
    if args.trace is not None:
        print(recommendation_text(args.trace, args.stats))
        return
    if args.stats is None:
        ap.error("give a stats JSON, or --trace")
    print(report(args.stats, args.window))
    if args.no_plot:
        return
    png = args.png or (args.stats[:-5] if args.stats.endswith(".json") else args.stats) + ".png"
    plot(args.stats, png, args.window)
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
