"""The advisor's tables for the docs, from the stored results: its check against the measured
runs (advisor_check.py writes check.json), the predicted against the measured step times, and the
critical batch measured against its estimates."""
import json
import math
import os
import statistics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def table(out):
    """Markdown: per link, the recommendation against the fastest measured, and how far each
    step-time prediction is from the measurement."""
    lines = ["| link | recommended | fastest measured (of ours) | recommended's time / fastest's "
             "| step time predicted / measured: median, worst | within 15% | delayed's steps x, "
             "predicted / measured |", "|---|---|---|---|---|---|---|"]
    for rate, c in out["cells"].items():
        ratios = sorted(v["ratio"] for v in c["step_ms"].values())
        worst = max(ratios, key=lambda r: abs(r - 1))
        within = sum(abs(r - 1) <= 0.15 for r in ratios)
        lines.append(f"| {rate} | {c['recommended']} | {c['fastest']} | "
                     f"{c['recommended_over_fastest']:.2f} | {statistics.median(ratios):.2f}, "
                     f"{worst:.2f} | {within} of {len(ratios)} | "
                     f"{c['steps_factor']['delayed']['predicted']:.2f} / "
                     f"{c['steps_factor']['delayed']['measured']:.2f} |")
    return "\n".join(lines)


def step_table(out):
    """Markdown: predicted / measured step time of every candidate at every link."""
    rates = list(out["cells"])
    names = list(next(iter(out["cells"].values()))["step_ms"])
    lines = ["| method | " + " | ".join(f"{r}: predicted / measured ms" for r in rates) + " |",
             "|---|" + "---|" * len(rates)]
    for n in names:
        cells = [out["cells"][r]["step_ms"][n] for r in rates]
        lines.append(f"| {n} | " + " | ".join(
            f"{c['predicted']:.1f} / {c['measured']:.1f} ({c['ratio']:.2f})" for c in cells) + " |")
    return "\n".join(lines)


def critical_table(out):
    """Markdown: the critical batch measured (fit of steps to target) against the estimates."""
    b_crit = out["fit"]["b_crit"]
    lines = [f"Measured: B_crit = {b_crit:.0f} (S_min = {out['fit']['s_min']:.0f} steps; steps "
             f"to training loss {out['target']} at batch "
             + ", ".join(f"{r['batch']}: {r['steps']}" for r in out["rows"]) + ")", "",
             "| estimated on the run at batch | its steps to target | moving averages over | "
             "B_noise at the target | over measured | critical_batch (median, last quarter) | "
             "over measured |", "|---|---|---|---|---|---|---|"]
    for e in out["estimates"]:
        lines.append(f"| {e['batch']} | {e['steps']} | {out['window']:.0f} samples "
                     f"({-1 / math.log(e['ema']):.0f} steps) | {e['noise_scale']:.0f} | "
                     f"{e['noise_scale'] / b_crit:.2f}x | {e['critical_batch']:.0f} | "
                     f"{e['critical_batch'] / b_crit:.2f}x |")
    return "\n".join(lines)


def dropped_table(out):
    """Markdown: the estimators tried first on the same runs (critical_batch_fixed_steps.json:
    moving averages over a fixed 100 steps; the path mean weighted by progress)."""
    b_crit = out["fit"]["b_crit"]
    lines = ["| run at batch | B_noise at the target, 100-step averages | over measured | path "
             "mean, weighted by 1 / (1 + B_noise/B) | over measured |", "|---|---|---|---|---|"]
    for e in out["estimates"]:
        path = e["critical_batch"]  # what that version of the estimate returned
        lines.append(f"| {e['batch']} | {e['noise_scale']:.0f} | {e['noise_scale'] / b_crit:.2f}x"
                     f" | {path:.0f} | {path / b_crit:.2f}x |")
    return "\n".join(lines)


def _stored(name):
    with open(os.path.join(ROOT, "docs", "results", name)) as f:
        return json.load(f)


TABLES = {"advisor_check": lambda: table(_stored("advisor/check.json")),  # docs_tables.py's
          "advisor_steps": lambda: step_table(_stored("advisor/check.json")),
          "critical_batch": lambda: critical_table(_stored("critical_batch.json")),
          "critical_batch_dropped": lambda: dropped_table(_stored("critical_batch_fixed_steps.json"))}
