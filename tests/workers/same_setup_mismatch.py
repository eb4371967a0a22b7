"""Runs on every rank: ranks construct DistributedOptimizer with different parameters or
arguments; each rank must raise ValueError naming the difference, quickly, without a hang.
Prints one JSON line per case and rank: {"case", "rank", "error", "seconds"}."""
import json
import time

import horovod.torch as hvd
import torch
import torch.nn as nn
import torch.optim as optim

import horovod_ext as hvd_ext


def model_for(case, rank):
    if case == "shape":
        return nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2 if rank == 0 else 5))
    if case == "count":
        return nn.Sequential(nn.Linear(4, 4), *([nn.Linear(4, 2)] if rank else []))
    return nn.Sequential(nn.Linear(4, 2))


def main():
    hvd.init()
    # Time the check, not Horovod's first use of each collective.
    hvd.allreduce(torch.zeros(1), name="warm_up")
    hvd.allgather(torch.zeros(1), name="warm_up.gather")
    r = hvd.rank()
    cases = {"shape": {}, "count": {"named": False},
             "mode": {"mode": hvd_ext.Delayed(staleness=1 + r)},
             "bucket": {"bucket_cap_mb": 25 if r == 0 else 0},  # invalid on one rank only
             "same": {}}
    for case, kw in cases.items():
        model = model_for(case, r)
        named = model.named_parameters() if kw.pop("named", True) else None
        t0 = time.time()
        try:
            hvd_ext.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1),
                                         named_parameters=named, **kw)
            error = None
        except ValueError as e:
            error = str(e)
        print(json.dumps({"case": case, "rank": r, "error": error,
                          "seconds": time.time() - t0}), flush=True)


if __name__ == "__main__":
    main()
