"""The advisor against measurement: its step-time predictions and its choice of mode, per link,
against the stored time-to-loss runs of the text model.

    python -m benchmarks.advisor_check measured       # horovod_ext/advisor/measured_steps.json from the grid
    python -m benchmarks.advisor_check probe --no-harness     # every cell's link, in turn
    python -m benchmarks.advisor_check compare --json docs/results/advisor/check.json

``probe`` runs benchmarks/advisor_probe.py (2 ranks, the text model, AdamW, batch 32 per rank,
as trained) under each cell's link (its rate and delay, from docs/results/time_to_loss/<cell>.json)
and stores its trace, then times every candidate in the throughput harness on the same link
(run.py --model chars, as time_to_loss.py does; ``--no-harness`` skips it: the grid's own step
times, from the same harness, stand); ``compare`` sets each trace's predictions against those
step times and against the grid: the recommended method's measured time to the target against
the fastest of ours. ``--dir`` keeps a run's traces and check apart (a repeat of the check).
"""
import argparse
import json
import os
import statistics
import sys

from benchmarks import entry
from benchmarks.advisor_tables import table
from benchmarks.cluster import run_under, switched_args
from horovod_ext.advisor import recommend

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

TTL = os.path.join(ROOT, "docs", "results", "time_to_loss")
ADVISOR = os.path.join(ROOT, "docs", "results", "advisor")
GRID = os.path.join(TTL, "1gbit.json")  # steps to the target do not depend on the link
CELLS = ("10gbit", "1gbit", "1gbit_5ms", "100mbit", "100mbit_20ms", "25mbit")


def mean_steps(method):
    """Mean steps to the target over the seeds; None when a seed never reached it."""
    steps = [r["steps_to_target"] for r in method["runs"]]
    return None if None in steps else statistics.mean(steps)


def measured(args):
    with open(GRID) as f:
        grid = json.load(f)
    rows = grid["methods"]
    sync = mean_steps(rows["sync"])
    out = {"source": "steps to the target over sync's on the text model (3 x 512 tanh, AdamW), "
                     f"{grid['ranks']} ranks x batch {grid['config']['batch']}, target "
                     f"validation loss {grid['target']['loss']:.4f} (sync at step "
                     f"{grid['target']['step']}), mean of seeds {grid['config']['seeds']}",
           "factors": {n: round(mean_steps(rows[n]) / sync, 4) for n in recommend.CANDIDATES
                       if n != recommend.EXACT and mean_steps(rows[n]) is not None}}
    with open(recommend.MEASURED, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


def probe(args):
    """Probes each cell's link (rate and delay from its stored grid) and stores the trace."""
    import subprocess
    os.makedirs(args.dir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    for cell in args.rates.split(","):
        with open(os.path.join(TTL, f"{cell}.json")) as f:
            link = json.load(f)["config"]
        cmd = [os.path.join(os.path.dirname(sys.executable), "horovodrun"), "--gloo", "-np",
               str(args.np), *entry("advisor_probe"), "--json",
               os.path.join(args.dir, f"{cell}_trace.json"), "--steps", str(args.steps)]
        run_under(link["rate"], link.get("delay_ms") or 0.0, args.np, cmd, env)
        if not args.no_harness:
            modes = ",".join(["horovod"] + list(recommend.CANDIDATES))
            subprocess.run([*entry("run"), "--np", str(args.np), "--rate", link["rate"],
                            *switched_args(link.get("delay_ms") or 0.0),
                            "--model", "chars", "--modes", modes, "--steps", "32",
                            "--rounds", str(args.rounds), "--warmup", "3", "--json",
                            os.path.join(args.dir, f"{cell}_steps.json")], env=env, check=True)


def compare(args):
    cells = {}
    for rate in args.rates.split(","):
        with open(os.path.join(args.dir, f"{rate}_trace.json")) as f:
            trace = json.load(f)
        with open(os.path.join(TTL, f"{rate}.json")) as f:
            ttl = json.load(f)
        rec = recommend.recommendation(trace)
        rows = ttl["methods"]
        fresh = os.path.join(args.dir, f"{rate}_steps.json")
        timed = {n: r["step_ms"] for n, r in rows.items()}  # the grid's, or the same session's:
        if os.path.exists(fresh):
            with open(fresh) as f:
                timed.update({r["mode"]: r["step_ms"] for r in json.load(f)["results"]})
        ours = [n for n in recommend.CANDIDATES if rows.get(n, {}).get("time_to_target_s")]
        fastest = min(ours, key=lambda n: rows[n]["time_to_target_s"])
        cells[rate] = {
            "recommended": rec["best"], "reason": rec["reason"], "fastest": fastest,
            "recommended_over_fastest": rows[rec["best"]]["time_to_target_s"]
            / rows[fastest]["time_to_target_s"],
            "critical_batch": rec["critical_batch"],
            "step_ms": {n: {"predicted": rec["rows"][n]["step_ms"], "measured": timed[n],
                            "grid": rows[n]["step_ms"],
                            "ratio": rec["rows"][n]["step_ms"] / timed[n]}
                        for n in recommend.CANDIDATES if n in timed},
            "steps_factor": {n: {"predicted": rec["rows"][n]["steps_factor"],
                                 "basis": rec["rows"][n]["steps_basis"],
                                 "measured": mean_steps(rows[n]) / mean_steps(rows["sync"])}
                             for n in recommend.CANDIDATES if n in rows}}
    out = {"model": "chars", "ranks": 2, "cells": cells}
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(table(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["measured", "probe", "compare"])
    p.add_argument("--rates", default=",".join(CELLS),
                   help="cells of the stored grid (docs/results/time_to_loss/<cell>.json)")
    p.add_argument("--np", type=int, default=2)
    p.add_argument("--steps", type=int, default=24, help="probe steps")
    p.add_argument("--rounds", type=int, default=2, help="harness rounds of 32 steps")
    p.add_argument("--no-harness", action="store_true", help="probe only")
    p.add_argument("--dir", default=ADVISOR, help="where the traces (and harness times) go")
    p.add_argument("--json", default=None, help="the check (default: check.json in --dir)")
    args = p.parse_args()
    args.json = args.json or os.path.join(args.dir, "check.json")
    {"measured": measured, "probe": probe, "compare": compare}[args.what](args)


if __name__ == "__main__":
    main()
