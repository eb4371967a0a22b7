"""Throughput of hvd.DistributedOptimizer versus hvd_ext.DistributedOptimizer's modes, in one
job, rounds alternating so machine noise hits all alike.

    horovodrun -np 2 python benchmarks/throughput.py --model cnn --modes horovod,sync,delayed

Prints images/sec per rank per round and overall (the shape of Horovod's synthetic benchmark),
the median step time of each and their ratio. Measured in the same rounds: T_compute (the same
step with no communication) and T_allreduce (one allreduce of all gradients, alone), so the
bound max(T_compute, T_allreduce) and each optimizer's efficiency (bound / step) show how close it
gets to the physical limit. Rank 0 writes a JSON file and a PNG bar chart beside it.
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

import horovod_ext as hvd_ext
from horovod_ext.progress import Progress
from horovod_ext.wire import wire_bytes
from models import BATCH, MODELS, loss_fn, make_batch
from timeline import plot_timeline, read_timeline, summarize_trace


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="cnn")
    p.add_argument("--batch-size", type=int, default=None,
                   help="per rank (default: 8 sequences for lm, 32 images otherwise)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=6,
                   help="rounds; each times every optimizer (steps + flush) once")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per optimizer first")
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    p.add_argument("--bucket-cap-mb", type=float, default=None,
                   help="bucket_cap_mb of every hvd_ext optimizer (default: sized to the model)")
    p.add_argument("--modes", default="horovod,sync",
                   help=f"comma-separated, from: {', '.join(MODES)}")
    p.add_argument("--json", default="results/throughput.json")
    p.add_argument("--trace", action="store_true",
                   help="after the timed rounds, trace a few steps of each optimizer with "
                        "Horovod's timeline (written beside --json) and report where the time went")
    return p.parse_args()


# Benchmarked optimizers: name -> hvd_ext.DistributedOptimizer arguments (None: Horovod's own
# DistributedOptimizer); stats=True measures the gradient noise scale on the way.
MODES = {"horovod": None, "sync": dict(mode=hvd_ext.Sync()),
         "delayed": dict(mode=hvd_ext.Delayed(staleness=1)),
         "delayed2": dict(mode=hvd_ext.Delayed(staleness=2)),
         "leader": dict(mode=hvd_ext.Leader(period=4, pull=0.2)),
         "easgd": dict(mode=hvd_ext.EASGD(period=4)),
         "localsgd": dict(mode=hvd_ext.LocalSGD(period=4)),
         "diloco": dict(mode=hvd_ext.DiLoCo(period=4)),
         "sync+stats": dict(mode=hvd_ext.Sync(), stats=True),
         "delayed+stats": dict(mode=hvd_ext.Delayed(staleness=1), stats=True),
         "sync-25mb": dict(mode=hvd_ext.Sync(), bucket_cap_mb=25)}


def make(name, base, args):
    model = copy.deepcopy(base)
    opt = torch.optim.SGD(model.parameters(), lr=0.01 * hvd.size(), momentum=0.9)
    if MODES[name] is None:
        opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters())
    else:
        kwargs = dict(MODES[name])
        if kwargs.pop("stats", False):
            kwargs["stats"] = hvd_ext.GradientStats(
                batch_size=args.batch_size, history=getattr(args, "stats_history", 10_000))
        kwargs.setdefault("bucket_cap_mb", args.bucket_cap_mb)
        opt = hvd_ext.DistributedOptimizer(opt, named_parameters=model.named_parameters(),
                                           **kwargs)
    return model, opt


def run_round(model, opt, data, target, n, marks=None):
    """n training steps, then flush() where the optimizer has one, so every gradient of the
    round has crossed the wire inside the timed window (a delayed mode's last allreduces
    included). Returns the mean step time of the round (seconds). ``marks``, a list, gets each
    step's (start, backward end, step end) in microseconds since the epoch, the clock of
    Horovod's timeline."""
    t0 = time.perf_counter()
    ours = hasattr(opt, "flush")
    for _ in range(n):
        a = time.time()
        opt.zero_grad()
        loss = loss_fn(model(data), target)
        loss.backward()
        b = time.time()
        opt.step(loss=loss) if ours else opt.step()  # leader modes elect by the loss
        if marks is not None:
            marks.append((a * 1e6, b * 1e6, time.time() * 1e6))
    if ours:
        opt.flush()
    return (time.perf_counter() - t0) / n


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
    names = args.modes.split(",")
    unknown = [n for n in names if n not in MODES]
    if unknown or names[0] != "horovod":
        raise SystemExit(f"--modes must start with horovod and name only {', '.join(MODES)}; "
                         f"got {args.modes}")
    runs = {n: make(n, base, args) for n in names}
    local = copy.deepcopy(base)
    runs["compute"] = (local, torch.optim.SGD(local.parameters(), lr=0.01, momentum=0.9))
    flat = torch.zeros(sum(p.numel() for p in base.parameters()))
    for n in runs:
        run_round(*runs[n], data, target, args.warmup)
    step_times = {n: [] for n in runs}
    step_times["allreduce"] = []
    rank0 = hvd.rank() == 0
    if rank0:
        n_params = sum(p.numel() for p in base.parameters())
        print(f"Model: {args.model} ({n_params / 1e6:.2f}M parameters), batch size {args.batch_size}"
              f" per rank, {hvd.size()} ranks, {args.threads} thread(s) per rank")
    rounds = Progress(args.rounds, "rounds", enabled=rank0)
    for r in range(args.rounds):
        for n in names if r % 2 == 0 else reversed(names):
            step_times[n].append(run_round(*runs[n], data, target, args.steps))
            rounds.write(f"Round #{r} {n:8s}: {args.batch_size / step_times[n][-1]:.1f} "
                         "img/sec per rank")
        step_times["compute"].append(run_round(*runs["compute"], data, target,
                                               max(1, args.steps // 2)))
        for _ in range(max(1, args.steps // 2)):
            t0 = time.perf_counter()
            hvd.allreduce_(flat, name="bench.allreduce")
            step_times["allreduce"].append(time.perf_counter() - t0)
        rounds.update()
    rounds.close()
    traces = {}
    if args.trace:
        stem = os.path.splitext(os.path.abspath(args.json))[0]
        os.makedirs(os.path.dirname(stem), exist_ok=True)
        for n in names:
            path = f"{stem}.timeline.{n}.json"
            hvd.start_timeline(path)
            marks = []
            run_round(*runs[n], data, target, min(args.steps, 4), marks)
            hvd.stop_timeline()
            if rank0:
                traces[n] = (marks, *read_timeline(path))
    # Median over rounds of each round's mean step time, averaged over ranks (one slow rank shows).
    results = []
    steps_run = args.warmup + args.rounds * args.steps
    for n in names:
        med = hvd.allreduce(torch.tensor(statistics.median(step_times[n])), name=f"med.{n}").item()
        opt = runs[n][1]
        sent = opt.bytes_sent / steps_run if hasattr(opt, "bytes_sent") else \
            wire_bytes("allreduce", flat.numel() * flat.element_size(), hvd.size())
        results.append({"mode": n, "optimizer": "hvd.DistributedOptimizer" if n == "horovod"
                        else "hvd_ext.DistributedOptimizer", "bytes_per_step": int(sent),
                        "step_ms": med * 1e3, "samples_per_sec": args.batch_size / med,
                        "samples_per_sec_total": args.batch_size * hvd.size() / med})
    compute_ms, allreduce_ms = (
        hvd.allreduce(torch.tensor(statistics.median(step_times[n])), name=f"med.{n}").item() * 1e3
        for n in ("compute", "allreduce"))
    bound_ms = max(compute_ms, allreduce_ms)
    base_ms = results[0]["step_ms"]
    for r in results:
        r["vs_horovod"] = base_ms / r["step_ms"]
        r["efficiency"] = bound_ms / r["step_ms"]
        if r["mode"] in traces:
            r["trace"] = summarize_trace(*traces[r["mode"]])
    if rank0:
        print(f"T_compute {compute_ms:.1f} ms, T_allreduce {allreduce_ms:.1f} ms "
              f"({flat.numel() * 4 / 1e6:.1f} MB), bound {bound_ms:.1f} ms")
        for r in results:
            print(f"{r['mode']:8s} median step {r['step_ms']:7.1f} ms | img/sec per rank "
                  f"{r['samples_per_sec']:7.1f} | total img/sec on {hvd.size()} ranks "
                  f"{r['samples_per_sec_total']:7.1f} | vs horovod {r['vs_horovod']:.3f}x")
        for r in results:
            if "trace" in r:
                t = r["trace"]
                print(f"{r['mode']:8s} traced: forward+backward {t['compute_ms']:7.1f} ms, then "
                      f"waits {t['wait_ms']:6.1f} ms; allreduce on the wire {t['wire_ms']:6.1f} ms, "
                      f"{t['wire_after_backward_ms']:6.1f} ms of it after backward")
        out = {"config": dict(vars(args), np=hvd.size(), torch=torch.__version__,
                              horovod=horovod.__version__, machine=platform.machine(),
                              cpus=os.cpu_count()),
               "compute_ms": compute_ms, "allreduce_ms": allreduce_ms, "bound_ms": bound_ms,
               "results": results}
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        png = os.path.splitext(args.json)[0] + ".png"
        plot(out, png)
        print(f"wrote {args.json} and {png}")
        if traces:
            plot_timeline(traces, f"{stem}.timeline.png")
            print(f"wrote {stem}.timeline.png and the timelines beside it")


def plot(out, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    res = out["results"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bars = ax.bar([r["mode"] for r in res], [r["step_ms"] for r in res],
                  color=["#888888"] + ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"][:len(res) - 1])
    for b, r in zip(bars, res):
        ax.annotate(f"{r['vs_horovod']:.2f}x\neff {r['efficiency']:.2f}", (b.get_x() + b.get_width() / 2,
                    b.get_height()), ha="center", va="bottom", fontsize=9)
    ax.axhline(out["bound_ms"], color="k", ls="--", lw=1,
               label=f"bound max(T_compute {out['compute_ms']:.0f}, T_allreduce "
                     f"{out['allreduce_ms']:.0f}) ms")
    c = out["config"]
    ax.set_ylabel("median step time (ms)")
    ax.set_title(f"{c['model']}, {c['np']} ranks, batch {c['batch_size']}/rank", fontsize=10)
    ax.set_ylim(0, max(r["step_ms"] for r in res) * 1.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
