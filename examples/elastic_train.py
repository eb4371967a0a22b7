"""Elastic training: the job survives a worker that dies and takes in one that joins, resuming
from the last ``commit()`` with the optimizer's state (pending gradients in delayed mode).

    horovodrun -np 2 --min-np 1 --max-np 4 --host-discovery-script ./discover_hosts.sh \\
        python examples/elastic_train.py --steps 500

Horovod's elastic recipe as it is, with ``hvd_ext.DistributedOptimizer``: importing
horovod_ext lets ``hvd.elastic.TorchState`` carry the optimizer's mode state. It also runs under a plain ``horovodrun -np 2``.
"""
import argparse

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--commit-every", type=int, default=10)
    args = p.parse_args()

    hvd.init()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                                       named_parameters=model.named_parameters(),
                                       mode=hvd_ext.Delayed(staleness=1))
    state = hvd.elastic.TorchState(model, opt, step=0)
    w = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))

    @hvd.elastic.run
    def train(state):
        g = torch.Generator().manual_seed(1000 * hvd.rank() + state.step)
        while state.step < args.steps:
            x = torch.randn(32, 16, generator=g)
            opt.zero_grad()
            loss = F.cross_entropy(model(x), (x @ w).argmax(dim=1))
            loss.backward()
            opt.step()
            state.step += 1
            if state.step % args.commit_every == 0:
                state.commit()
                if hvd.rank() == 0:
                    print(f"step {state.step} on {hvd.size()} ranks: loss {loss.item():.4f}")

    train(state)
    opt.flush()


if __name__ == "__main__":
    main()
