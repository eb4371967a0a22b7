"""Throughput of hvd_ext.DistributedOptimizer's modes against the optimizers users would pick
instead (Horovod as it comes, Horovod tuned for the cell, PyTorch DDP), in one job, rounds
alternating so machine noise hits all alike.

    horovodrun -np 2 python -m benchmarks.throughput --model cnn --modes horovod,horovod-tuned,ddp,sync,delayed

Prints images/sec per rank per round and overall (the shape of Horovod's synthetic benchmark),
the median step time of each, and its speedup over Horovod and over the fastest peer with a 95%
bootstrap confidence interval over rounds (ratios.py). Measured in the same rounds: T_compute
(the same step with no communication) and T_allreduce (one allreduce of all gradients, alone),
so the bound max(T_compute, T_allreduce) and each optimizer's efficiency (bound / step) show how
close it gets to the physical limit; and the best step any exact synchronous schedule could
reach for this model (bound.py), with each optimizer's efficiency against it. Rank 0 writes a
JSON file and a PNG bar chart beside it.
"""
import argparse
import copy
import json
import os
import platform
import statistics
import time

import horovod
import horovod.torch as hvd
import torch

from benchmarks import peers
from benchmarks.bound import measured_bound
from benchmarks.charts import plot
from benchmarks.charts import title as chart_title
from benchmarks.models import BATCH, MODELS, inner_optimizer, make_batch
from benchmarks.optimizers import (MODES, PEERS, TUNED, known, load_plugins, make, run_round,
                                   rounds_of, steady_after)
from benchmarks.ratios import cell, speedup, verdict
from benchmarks.record import stored_config
from benchmarks.timeline import plot_timeline, read_timeline, summarize_trace
from benchmarks.warmup import warm_up
from horovod_ext.runtime.progress import Progress
from horovod_ext.runtime.wire import wire_bytes


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="cnn")
    p.add_argument("--batch-size", type=int, default=None,
                   help="per rank (default: 8 sequences for lm, 32 images otherwise)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=8,
                   help="rounds; each times every optimizer (steps + flush) once")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per optimizer first")
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    p.add_argument("--bucket-cap-mb", type=float, default=None,
                   help="bucket_cap_mb of every hvd_ext optimizer (default: sized to the model)")
    p.add_argument("--modes", default="horovod,sync",
                   help=f"comma-separated, from: {', '.join(MODES)}, or any method of the catalog "
                        "(horovod_ext.methods); a mode of ours followed by "
                        "@tuned runs under horovod-tuned's fusion threshold and cycle time")
    p.add_argument("--plugin", action="append", default=[],
                   help="a Python file or module imported first, which may register codecs "
                        "(horovod_ext.codecs.register) and modes (horovod_ext.methods."
                        "register_mode) that --modes then names; repeatable")
    p.add_argument("--json", default="results/throughput.json")
    p.add_argument("--link", default="unshaped",
                   help="the link's rate, for the record (run.py passes the rate it shapes)")
    p.add_argument("--trace", action="store_true",
                   help="after the timed rounds, trace a few steps of each optimizer with "
                        "Horovod's timeline (written beside --json) and report where the time went")
    return p.parse_args()


def main():
    args = parse_args()
    if args.batch_size is None:
        args.batch_size = BATCH.get(args.model, 32)
    if args.trace:
        os.environ["HOROVOD_TIMELINE"] = "DYNAMIC"  # read by hvd.init()
    hvd.init()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = MODELS[args.model]()
    data, target = make_batch(args.model, args.batch_size)
    load_plugins(args.plugin)
    names, tuned_peer = args.modes.split(","), peers.tuned_name()
    unknown = [n for n in names if not known(n.removesuffix(TUNED))
               or (n.endswith(TUNED) and (n in PEERS or tuned_peer not in names))]
    if unknown or names[0] != "horovod":
        raise SystemExit(f"--modes must start with horovod and name only {', '.join(MODES)} or "
                         f"methods of the catalog (a "
                         f"mode of ours may end in {TUNED} when {tuned_peer} is listed); got "
                         f"{args.modes}")
    for n in [n for n in names if n in PEERS and peers.REGISTRY[n].missing()]:
        names.remove(n)  # said, not dropped silently
        if hvd.rank() == 0:
            print(f"{n}: not run here: {peers.REGISTRY[n].missing()}", flush=True)
    if tuned_peer in names and not peers.has_setter():
        names = [n for n in names if n != tuned_peer and not n.endswith(TUNED)]
        if hvd.rank() == 0:
            print(peers.SETTER_NEEDED, flush=True)
    runs = {n: make(n, base, args) for n in names}
    local = copy.deepcopy(base)
    runs["compute"] = (local, inner_optimizer(args.model, local.parameters(), 1))
    flat = torch.zeros(sum(p.numel() for p in base.parameters()))
    rank0 = hvd.rank() == 0
    tuned = peers.TunedHorovod() if tuned_peer in names else None
    warmups = {n: aligned_warmup(n, max(args.warmup, steady_after(n.removesuffix(TUNED))))
               for n in runs}
    setting, tuning = warm_up(runs, tuned, warmups,
                              lambda n, k: run_round(*runs[n], data, target, k),
                              lambda line: print(line, flush=True) if rank0 else None)
    step_times, sent = {n: [] for n in runs}, {n: 0.0 for n in names}  # sent: in the rounds
    step_times["allreduce"] = []
    if rank0:
        n_params = sum(p.numel() for p in base.parameters())
        print(f"Model: {args.model} ({n_params / 1e6:.2f}M parameters), batch size {args.batch_size}"
              f" per rank, {hvd.size()} ranks, {args.threads} thread(s) per rank")
    rounds = Progress(args.rounds, "rounds", enabled=rank0)
    for r in range(args.rounds):
        for n in names if r % 2 == 0 else reversed(names):
            before = getattr(runs[n][1], "bytes_sent", 0.0)
            with setting[n]():
                step_times[n].append(run_round(*runs[n], data, target,
                                               round_steps(n, args.steps)))
            sent[n] += getattr(runs[n][1], "bytes_sent", 0.0) - before
            rounds.write(f"Round #{r} {n:13s}: {args.batch_size / step_times[n][-1]:.1f} "
                         "img/sec per rank")
        # As many steps as every optimizer's round: a round's first step is slower (the model
        # was not the last one run), and fewer steps would weigh it more.
        step_times["compute"].append(run_round(*runs["compute"], data, target, args.steps))
        for _ in range(max(1, args.steps // 2)):
            t0 = time.perf_counter()
            hvd.allreduce_(flat, name="bench.allreduce")
            step_times["allreduce"].append(time.perf_counter() - t0)
        rounds.update()
    rounds.close()
    traces = trace(args, names, runs, setting, data, target) if args.trace else {}
    out = summarize(args, names, runs, step_times, sent, flat, traces, data, target)
    if tuned is not None:
        out["horovod_tuned"] = tuned.describe()
    out["tuning"] = tuning
    if rank0:
        report(args, out, traces)


def round_steps(name, steps):
    """Steps of ``name``'s timed round: ``steps``, or whole periods of a method with a longer
    one, so that every round holds each of its outer rounds once."""
    period = (rounds_of(name) or (1, 0))[0]
    return -(-period // steps) * steps


def aligned_warmup(name, steps):
    """At least ``steps`` untimed steps, and for a method whose rounds overlap the next ``d``
    inner steps, d more than a whole number of periods: then no timed round ends with an
    exchange in flight (the windows start as one lands), so no flush() at a round's end waits
    on the wire and no exchange runs on into the next optimizer's round."""
    period, behind = rounds_of(name) or (1, 0)
    if behind == 0:
        return steps
    return behind + -(-max(0, steps - behind) // period) * period


def trace(args, names, runs, setting, data, target):
    """A few steps of each optimizer under Horovod's timeline; rank 0 gets, per optimizer, its
    step marks and the timeline read back."""
    stem = os.path.splitext(os.path.abspath(args.json))[0]
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    traces = {}
    for n in names:
        path = f"{stem}.timeline.{n}.json"
        hvd.start_timeline(path)
        marks = []
        with setting[n]():
            run_round(*runs[n], data, target, min(args.steps, 4), marks)
        hvd.stop_timeline()
        if hvd.rank() == 0:
            traces[n] = (marks, *read_timeline(path))
    return traces


def summarize(args, names, runs, step_times, sent_in_rounds, flat, traces, data, target):
    """The JSON's content: per optimizer the median over rounds of each round's mean step time
    (averaged over ranks, so one slow rank shows), bytes per step in the rounds, speedups with
    their intervals, bounds."""
    def over_ranks(n):
        return hvd.allreduce(torch.tensor(step_times[n]), name=f"rounds.{n}").tolist()
    per_round = {n: over_ranks(n) for n in (*names, "compute", "allreduce")}
    med = {n: statistics.median(v) for n, v in per_round.items()}
    compute_ms, allreduce_ms = med["compute"] * 1e3, med["allreduce"] * 1e3
    # The bounds from the fastest round of each (bound.py: an exact optimizer's step is never
    # faster than its compute alone, but the median of a noisy compute is).
    fast = {n: min(per_round[n]) for n in ("compute", "allreduce")}
    bound_ms = max(fast["compute"], fast["allreduce"]) * 1e3
    sync_bound_s, forward_s, backward_s = measured_bound(runs["compute"][0], data, target,
                                                         fast["compute"], fast["allreduce"])
    sync_bound_ms = max(sync_bound_s * 1e3, bound_ms)
    present = [n for n in PEERS if n in names]
    best_peer = min(present, key=med.__getitem__)
    results = []
    for n in names:
        opt = runs[n][1]
        full = wire_bytes("allreduce", flat.numel() * flat.element_size(), hvd.size())
        wire = peers.REGISTRY[n.removesuffix(TUNED)].wire if n in PEERS else None
        steps_run = args.rounds * round_steps(n, args.steps)
        sent = sent_in_rounds[n] / steps_run if hasattr(opt, "bytes_sent") else \
            None if wire is None else full * wire
        step_ms = med[n] * 1e3
        r = {"mode": n, "optimizer": (peers.REGISTRY[n].label if n in PEERS else
                                      "hvd_ext.DistributedOptimizer"),
             "bytes_per_step": None if sent is None else int(sent), "step_ms": step_ms,
             "round_ms": [v * 1e3 for v in per_round[n]],
             "samples_per_sec": args.batch_size / med[n],
             "samples_per_sec_total": args.batch_size * hvd.size() / med[n],
             "efficiency": bound_ms / step_ms, "sync_efficiency": sync_bound_ms / step_ms}
        for key, peer in (("vs_horovod", "horovod"), ("vs_best_peer", best_peer)):
            r[key], r[key + "_ci95"] = speedup(per_round[peer], per_round[n])
            r[key + "_verdict"] = verdict(r[key + "_ci95"])
        if n in traces:
            r["trace"] = summarize_trace(*traces[n])
        results.append(r)
    return {"config": stored_config(args, np=hvd.size(), torch=torch.__version__,
                           horovod=horovod.__version__, machine=platform.machine(),
                           cpus=os.cpu_count()),
            "compute_ms": compute_ms, "allreduce_ms": allreduce_ms, "bound_ms": bound_ms,
            "compute_fastest_ms": fast["compute"] * 1e3,
            "compute_round_ms": [v * 1e3 for v in per_round["compute"]],
            "allreduce_fastest_ms": fast["allreduce"] * 1e3, "bound_from": "fastest round",
            "sync_bound_ms": sync_bound_ms, "forward_ms": forward_s * 1e3,
            "backward_ms": backward_s * 1e3, "best_peer": best_peer, "results": results}


def report(args, out, traces):
    """Rank 0: the console table, the JSON, the bar chart, the timeline picture."""
    print(f"T_compute {out['compute_ms']:.1f} ms, T_allreduce {out['allreduce_ms']:.1f} ms, "
          f"bound {out['bound_ms']:.1f} ms; best exact-sync schedule {out['sync_bound_ms']:.1f} ms "
          f"(forward {out['forward_ms']:.1f} ms, backward {out['backward_ms']:.1f} ms); "
          f"fastest peer: {out['best_peer']} (ratios with 95% bootstrap intervals over "
          f"{args.rounds} rounds)")
    n = out["config"]["np"]
    for r in out["results"]:
        print(f"{r['mode']:13s} median step {r['step_ms']:7.1f} ms | img/sec per rank "
              f"{r['samples_per_sec']:7.1f} | total on {n} ranks {r['samples_per_sec_total']:7.1f}"
              f" | vs horovod {cell(r['vs_horovod'], r['vs_horovod_ci95'])} | vs best peer "
              f"{cell(r['vs_best_peer'], r['vs_best_peer_ci95'])} {r['vs_best_peer_verdict']}"
              f" | eff {r['efficiency']:.2f}, vs exact-sync bound {r['sync_efficiency']:.2f}")
    for r in out["results"]:
        if "trace" in r:
            t = r["trace"]
            print(f"{r['mode']:13s} traced: forward+backward {t['compute_ms']:7.1f} ms, then "
                  f"waits {t['wait_ms']:6.1f} ms; allreduce on the wire {t['wire_ms']:6.1f} ms, "
                  f"{t['wire_after_backward_ms']:6.1f} ms of it after backward")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    png = os.path.splitext(args.json)[0] + ".png"
    plot(out, png)
    print(f"wrote {args.json} and {png}")
    if traces:
        stem = os.path.splitext(os.path.abspath(args.json))[0]
        plot_timeline(traces, f"{stem}.timeline.png", chart_title(out))
        print(f"wrote {stem}.timeline.png and the timelines beside it")


if __name__ == "__main__":
    main()
