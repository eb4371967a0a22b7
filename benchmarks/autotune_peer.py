"""Horovod's own autotuner as a peer, ``horovod-autotune``: Horovod's DistributedOptimizer with
``HOROVOD_AUTOTUNE=1``. The autotuner is process-wide and starts at ``hvd.init()``, so it runs in
a job of its own on the same cell (same model, link, steps and rounds) right after the main job;
its rounds cannot alternate with the others', so its ratios are unpaired (ratios.py).

Its search is Horovod's (Bayesian optimisation of cycle time and fusion threshold, plus its
categorical knobs), sampled every HOROVOD_AUTOTUNE_STEPS_PER_SAMPLE steps; with Horovod's
defaults it needs over a thousand steps, so the job shortens the sampling (SAMPLE_ENV) and gives
it WARMUP_STEPS untimed steps first. What it logged (HOROVOD_AUTOTUNE_LOG: one line per
setting scored, then its best) goes into the JSON: the number of settings scored and the last
line, which is its choice when it finished within the warm-up.
"""
import csv
import json
import os

from benchmarks.ratios import speedup_unpaired, verdict

NAME = "horovod-autotune"
WARMUP_STEPS = 150
SAMPLE_ENV = {"HOROVOD_AUTOTUNE": "1", "HOROVOD_AUTOTUNE_WARMUP_SAMPLES": "1",
              "HOROVOD_AUTOTUNE_STEPS_PER_SAMPLE": "2"}


def split(modes):
    """(the modes for the main job, whether horovod-autotune was asked for)."""
    names = modes.split(",")
    return ",".join(n for n in names if n != NAME), NAME in names


def job(json_path):
    """(modes, extra throughput.py arguments, environment) of the autotune job."""
    stem = os.path.splitext(json_path)[0]
    env = dict(SAMPLE_ENV, HOROVOD_AUTOTUNE_LOG=f"{stem}.autotune.csv")
    return "horovod", ["--warmup", str(WARMUP_STEPS)], env, f"{stem}.autotune.json"


def merge(main_path, autotune_path):
    """Adds the autotune job's Horovod result to the main JSON as ``horovod-autotune``."""
    with open(main_path) as f:
        main = json.load(f)
    with open(autotune_path) as f:
        own = json.load(f)
    r = dict(next(x for x in own["results"] if x["mode"] == "horovod"), mode=NAME,
             optimizer="hvd.DistributedOptimizer, HOROVOD_AUTOTUNE=1 (own job)", own_job=True)
    rounds = {x["mode"]: x["round_ms"] for x in main["results"]}
    for key, peer in (("vs_horovod", "horovod"), ("vs_best_peer", main["best_peer"])):
        r[key], r[key + "_ci95"] = speedup_unpaired(rounds[peer], r["round_ms"])
        r[key + "_verdict"] = verdict(r[key + "_ci95"])
    r["efficiency"] = main["bound_ms"] / r["step_ms"]
    r["sync_efficiency"] = main["sync_bound_ms"] / r["step_ms"]
    log_path = os.path.splitext(autotune_path)[0] + ".csv"
    rows = list(csv.reader(open(log_path))) if os.path.exists(log_path) else []
    main.setdefault("tuning", {})[NAME] = dict(
        warmup_steps=WARMUP_STEPS, environment=SAMPLE_ENV, settings_scored=max(0, len(rows) - 1),
        last_logged=dict(zip(rows[0], rows[-1])) if len(rows) > 1 else None)
    main["results"].append(r)
    with open(main_path, "w") as f:
        json.dump(main, f, indent=1)
    return r
