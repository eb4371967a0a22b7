"""Runs on every rank: trains with the online tuner (argv[2], a mode: sync, delayed, overlap) for
40 steps, the ranks' step times made to differ (rank r sleeps r ms more on odd steps), and a copy
under hvd.DistributedOptimizer on the same data. Rank 0 writes to argv[1]: the tuner's record on
every rank, the bucket cap and schedule in use, the forward schedule's window (the most buckets
on the wire at once, the link rate it measured), and the largest relative difference from
Horovod's result.
argv[3:] are DistributedOptimizer keyword arguments as name=value (Python literals)."""
import ast
import copy
import json
import sys
import time

import horovod.torch as hvd
import torch
import torch.nn as nn
import torch.nn.functional as F

import horovod_ext as hvd_ext

STEPS = 40
MODES = {"sync": hvd_ext.Sync(), "delayed": hvd_ext.Delayed(staleness=1),
         "overlap": hvd_ext.Sync(overlap_forward=True)}


def batch(step):
    g = torch.Generator().manual_seed(100 * step + hvd.rank())
    return torch.randn(16, 256, generator=g), torch.randint(0, 10, (16,), generator=g)


def train(model, opt, ours):
    for step in range(STEPS):
        opt.zero_grad()
        x, y = batch(step)
        F.cross_entropy(model(x), y).backward()
        if ours and step % 2:
            time.sleep(hvd.rank() * 1e-3)
        opt.step()
    if ours:
        opt.flush()


def main():
    out, mode = sys.argv[1], sys.argv[2]
    kwargs = {k: ast.literal_eval(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
    hvd.init()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ref = nn.Sequential(*[nn.Sequential(nn.Linear(256, 256), nn.ReLU()) for _ in range(8)],
                        nn.Linear(256, 10))
    ours = copy.deepcopy(ref)
    ref_opt = hvd.DistributedOptimizer(torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9),
                                       named_parameters=ref.named_parameters())
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(ours.parameters(), lr=0.05, momentum=0.9),
                                       named_parameters=ours.named_parameters(),
                                       mode=MODES[mode], **kwargs)
    train(ref, ref_opt, False)
    train(ours, opt, True)
    if mode == "delayed":  # the reference: Horovod's, one step late, is not simulated here
        err = None
    else:
        err = max(((a - b).abs().max() / b.abs().max()).item()
                  for a, b in zip(ours.parameters(), ref.parameters()))
    records = hvd.allgather_object(opt.tuned)
    engine = opt._mode_object.engine
    if hvd.rank() == 0:
        with open(out, "w") as f:
            json.dump(dict(tuned=records, rel_err=err,
                           cap_mb=engine.planner.cap / 2**20,
                           first_mb=engine.planner.first_cap / 2**20,
                           buckets=engine.bucket_count,
                           schedule=engine.schedule,
                           applied_in_forward=engine.applied_in_forward,
                           rate=engine._priority.rate, most_moving=engine._priority.most_moving),
                  f)


if __name__ == "__main__":
    main()
