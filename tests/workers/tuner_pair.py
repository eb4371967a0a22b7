"""Runs on every rank: two optimizers of one process, each with its tuner. "sequential": the
second starts training after the first is done tuning; "interleaved": their steps alternate.
Rank 0 writes [first's record, second's record] to argv[1]."""
import json
import sys

import horovod.torch as hvd
import torch
import torch.nn as nn
import torch.nn.functional as F

import horovod_ext as hvd_ext


def make():
    model = nn.Sequential(*[nn.Linear(128, 128) for _ in range(4)])
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.01),
                                       named_parameters=model.named_parameters())
    return model, opt


def step(model, opt):
    opt.zero_grad()
    F.mse_loss(model(torch.randn(8, 128)), torch.zeros(8, 128)).backward()
    opt.step()


def main():
    out, how = sys.argv[1:3]
    hvd.init()
    torch.set_num_threads(1)
    pairs = [make(), make()]
    if how == "sequential":
        for model, opt in pairs:
            for _ in range(35):
                step(model, opt)
    else:
        for _ in range(35):
            for model, opt in pairs:
                step(model, opt)
    if hvd.rank() == 0:
        with open(out, "w") as f:
            json.dump([opt.tuned for _, opt in pairs], f)


if __name__ == "__main__":
    main()
