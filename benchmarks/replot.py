"""Redraws the figures of docs/results from their stored JSON (no rerun): each throughput run
(charts.py), the peer sweeps (sweep_report.py), the soak, the text experiments
(diloco_charts.py) and the kernel benchmark: each PNG that lies beside its JSON.

    python -m benchmarks.replot            # every figure it knows
    python -m benchmarks.replot --list     # only say which
"""
import argparse
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "docs" / "results"


def drawer(path, data):
    """The function that draws ``data`` (the JSON at ``path``), or None."""
    if isinstance(data, list) and data and "best_peer" in data[0]:
        from benchmarks.sweep_report import plot_sweep
        return lambda png: plot_sweep(data, png)
    if not isinstance(data, dict):
        return None
    if "methods" in data and "lrs" in data:
        from benchmarks.diloco_charts import plot
        return lambda png: plot(data, png)
    if path.name == "soak.json":
        from benchmarks.charts import plot_soak
        return lambda png: plot_soak(data["results"], png, data["size"], data["config"])
    if path.name == "kernels_cpu.json":
        from benchmarks.charts import plot_kernels
        return lambda png: plot_kernels(data, png)
    results = data.get("results")
    if isinstance(results, list) and results and "step_ms" in results[0] and "bound_ms" in data:
        from benchmarks.charts import plot, plot_medians
        rate = re.search(r"\d+[mg]bit", path.stem)  # runs stored before the link was recorded
        if not data["config"].get("link") and rate:
            data["config"]["link"] = rate.group(0)
        draw = plot if "vs_best_peer_ci95" in results[0] else plot_medians
        return lambda png: draw(data, png)
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--list", action="store_true", help="say which figures, draw none")
    args = p.parse_args()
    for path in sorted(RESULTS.rglob("*.json")):
        png = path.with_suffix(".png")
        draw = drawer(path, json.loads(path.read_text()))
        if draw is None or not png.exists():  # only the figures the results already have
            continue
        print(png.relative_to(RESULTS.parent.parent))
        if not args.list:
            draw(str(png))


if __name__ == "__main__":
    main()
