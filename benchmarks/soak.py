"""Soak: many steps of every mode on a small model; does anything grow?

    horovodrun --gloo -np 2 python -m benchmarks.soak --steps 10000 --json results/soak.json

Per mode, after a warm-up and then every ``--every`` steps: resident memory (RSS), open file
descriptors, Horovod's handle map (handles not synchronized yet), the optimizer's own buffers
(gradient buckets, communication and snapshot buffers, leader/EASGD buffers) and the number of
Python objects. Growth is measured from the end of the warm-up to the end, after flush(). Rank 0
prints a table, writes the JSON and a PNG of RSS over steps beside it. The statistics modes
keep the latest ``--stats-history`` steps by design; that history is full before the warm-up ends.
"""
import argparse
import gc
import json
import os
import types

import horovod.torch as hvd
import torch
from horovod.torch import mpi_ops

from benchmarks.charts import plot_soak
from benchmarks.models import MLP, make_batch
from benchmarks.optimizers import MODES, PEERS, make, run_round
from benchmarks.record import stored_config
from horovod_ext.runtime.progress import Progress

# Horovod as the reference, then every optimizer of ours (the peers are other libraries)
SOAKED = ["horovod"] + [m for m in MODES if m not in PEERS]


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def sample(step, opt):
    if getattr(opt, "gradient_stats", None) is not None:
        opt.gradient_stats.steps  # reads the statistics: its queue of unread steps is empty
    gc.collect()
    return dict(step=step, rss_mb=rss_mb(), fds=len(os.listdir("/proc/self/fd")),
                handles=len(mpi_ops._handle_map),
                buffer_bytes=getattr(opt, "buffer_bytes", 0),  # Horovod's optimizer keeps none
                objects=len(gc.get_objects()))


def soak(name, args):
    torch.manual_seed(0)
    base = MLP(width=args.width, depth=2)
    model, opt = make(name, base, types.SimpleNamespace(
        model="mlp", batch_size=args.batch_size, bucket_cap_mb=0.25,
        stats_history=args.stats_history))
    data, target = make_batch("mlp", args.batch_size, torch.Generator().manual_seed(hvd.rank()))
    run_round(model, opt, data, target, args.warmup)
    bar = Progress(args.steps, name, enabled=hvd.rank() == 0)
    samples = [sample(0, opt)]
    done = 0
    while done < args.steps:
        n = min(args.every, args.steps - done)
        run_round(model, opt, data, target, n)  # ends with flush(): nothing left in flight
        done += n
        bar.update(n)
        samples.append(sample(done, opt))
    bar.close()
    first, last = samples[0], samples[-1]
    return dict(samples=samples, rss_growth=(last["rss_mb"] - first["rss_mb"]) / first["rss_mb"],
                **{f"{k}_growth": last[k] - first[k]
                   for k in ("fds", "handles", "buffer_bytes", "objects")})


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", default=",".join(SOAKED), help=f"of {', '.join(MODES)}")
    p.add_argument("--steps", type=int, default=10_000, help="per mode, after the warm-up")
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--every", type=int, default=500, help="steps between samples")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--stats-history", type=int, default=100,
                   help="GradientStats(history=...): steps kept, reached during the warm-up")
    p.add_argument("--json", default="results/soak.json")
    args = p.parse_args()
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        p.error(f"--modes: unknown {unknown}; valid: {', '.join(MODES)}")
    for name, value in (("--steps", args.steps), ("--every", args.every),
                        ("--warmup", args.warmup)):
        if value < 1:
            p.error(f"{name} must be >= 1")
    hvd.init()
    torch.set_num_threads(1)
    results = {name: soak(name, args) for name in modes}
    if hvd.rank() != 0:
        return
    print(f"{'mode':<14}{'RSS MiB':>16}{'growth':>9}{'fds':>6}{'handles':>9}{'buffers':>9}"
          f"{'objects':>9}")
    for name, r in results.items():
        a, b = r["samples"][0], r["samples"][-1]
        print(f"{name:<14}{a['rss_mb']:>7.1f} -> {b['rss_mb']:<6.1f}{r['rss_growth']:>+8.2%}"
              f"{r['fds_growth']:>+6d}{r['handles_growth']:>+9d}{r['buffer_bytes_growth']:>+9d}"
              f"{r['objects_growth']:>+9d}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(dict(config=stored_config(args), size=hvd.size(), results=results), f, indent=1)
    plot_soak(results, os.path.splitext(args.json)[0] + ".png", hvd.size(), vars(args))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
