"""Delayed gradients with the learning rate the gradient statistics advise.

    horovodrun -np 2 python examples/delayed_with_lr_advice.py --steps 300

Phase 1 measures the gradient noise scale B_noise in sync mode for a few steps
(``stats=GradientStats``) on a copy of the model (an optimizer's backward hooks stay on the
parameters it was built over, so the real model gets one optimizer only); the advisor turns it into a learning-rate factor for staleness k,
lr_k = lr_0 * M / (M + k) with M = B_noise / (global batch) in steps (see ``horovod_ext.advise``).
Phase 2 trains in delayed mode (``Delayed(staleness=k)``: step t applies the gradient of step
t - k, so communication overlaps k whole steps) at that learning rate, and ``flush()`` applies
the last k gradients at the end.
"""
import argparse
import copy

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from horovod_ext import advise


def batches(rank, batch, dim=32):
    g = torch.Generator().manual_seed(1000 + rank)
    w = torch.randn(dim, 4, generator=torch.Generator().manual_seed(0))
    while True:
        x = torch.randn(batch, dim, generator=g)
        yield x, (x @ w + 0.5 * torch.randn(batch, 4, generator=g)).argmax(dim=1)


def train(model, opt, data, steps):
    for _ in range(steps):
        x, y = next(data)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return loss.item()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300, help="delayed-mode steps")
    p.add_argument("--measure-steps", type=int, default=50, help="sync steps measuring B_noise")
    p.add_argument("--staleness", type=int, default=2)
    p.add_argument("--batch", type=int, default=16, help="per rank")
    p.add_argument("--lr", type=float, default=0.1, help="the learning rate of sync SGD")
    args = p.parse_args()

    hvd.init()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4))
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    data = batches(hvd.rank(), args.batch)

    probe = copy.deepcopy(model)
    stats = hvd_ext.GradientStats(batch_size=args.batch, ema=0.9)
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(probe.parameters(), lr=args.lr),
                                       named_parameters=probe.named_parameters(), stats=stats)
    train(probe, opt, data, args.measure_steps)
    summary = advise.summary(opt.gradient_stats)
    k = args.staleness
    factor = summary["delay_m"] / (summary["delay_m"] + k)
    if hvd.rank() == 0:
        print(f"B_noise {summary['noise_scale']:.3g} samples = {summary['delay_m']:.3g} steps of "
              f"the global batch; learning rate for staleness {k}: x{factor:.3g}")

    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=args.lr * factor),
                                       named_parameters=model.named_parameters(),
                                       mode=hvd_ext.Delayed(staleness=k))
    loss = train(model, opt, data, args.steps)
    opt.flush()  # the last k gradients
    if hvd.rank() == 0:
        print(f"delayed mode, staleness {k}, lr {args.lr * factor:.3g}: last loss {loss:.4f}")


if __name__ == "__main__":
    main()
