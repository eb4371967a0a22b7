"""Probe the model and link, then train with the mode and codec the advisor recommends.

    horovodrun -np 2 python examples/choose_mode.py --steps 200

A plain Horovod training script would build ``hvd_ext.DistributedOptimizer(opt, ...)`` with a
mode chosen by hand. Here ``hvd_ext.probe`` first measures a few steps of this model on this
job's link (every rank; the model and optimizer come back unchanged), the advisor predicts each
mode's and codec's step time and steps to a loss, and the optimizer is built with the one it
recommends (``advise.optimizer_kwargs``). Every rank gets the same trace, hence the same choice.
"""
import argparse

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from horovod_ext import advise


def batches(rank, batch, dim=64):
    g = torch.Generator().manual_seed(1000 + rank)
    w = torch.randn(dim, 8, generator=torch.Generator().manual_seed(0))
    while True:
        x = torch.randn(batch, dim, generator=g)
        yield x, (x @ w).argmax(dim=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=32, help="per rank")
    p.add_argument("--lr", type=float, default=1e-3)
    args = p.parse_args()

    hvd.init()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.Tanh(),
                                torch.nn.Linear(512, 512), torch.nn.Tanh(), torch.nn.Linear(512, 8))
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    data = batches(hvd.rank(), args.batch)

    def closure():
        x, y = next(data)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    trace = hvd_ext.probe(model, opt, closure, batch_size=args.batch)
    choice = advise.recommendation(trace)["best"]
    if hvd.rank() == 0:
        print(advise.recommendation_text(trace))
    print(f"rank {hvd.rank()} trains with {choice}", flush=True)

    opt = hvd_ext.DistributedOptimizer(opt, named_parameters=model.named_parameters(),
                                       **advise.optimizer_kwargs(choice))
    for step in range(args.steps):
        opt.zero_grad()
        loss = closure()
        opt.step()
        if hvd.rank() == 0 and step % 50 == 0:
            print(f"step {step}: loss {loss.item():.4f}", flush=True)
    opt.flush()
    if hvd.rank() == 0:
        print(f"last loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
