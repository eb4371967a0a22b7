"""torchft's local SGD and DiLoCo peers (benchmarks/torchft_peer.py) against ours on the same
data: the largest parameter difference after 16 steps, how far the parameters moved, whether the
ranks hold one model, and the loss on held-out data before and after. argv[1]: the JSON."""
import json
import sys

import horovod.torch as hvd
import torch

import horovod_ext as hvd_ext
from benchmarks import peers
from horovod_ext import methods

PAIRS = {"torchft-localsgd-H4": "localsgd-H4", "torchft-diloco-H4": "diloco-H4-o1.0-m0.5",
         # streamed: 2 fragments, each round overlapping 1 step, mixed at 0.5 (as the grid's)
         "torchft-streaming-H8": "diloco-H8-o1.0-m0.5-f2-t1-a0.5"}


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))


def loss_of(m):
    g = torch.Generator().manual_seed(12345)
    x, y = torch.randn(256, 6, generator=g), torch.randint(0, 3, (256,), generator=g)
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(m(x), y).item()


def train(m, opt, steps=16):
    for step in range(steps):
        g = torch.Generator().manual_seed(10 * step + hvd.rank())
        x, y = torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def main(out):
    hvd.init()
    torch.set_num_threads(1)
    got = {}
    for peer, ours in PAIRS.items():
        m = model()
        before = loss_of(m)
        theirs = train(*peers.REGISTRY[peer].wrap(m, torch.optim.SGD(m.parameters(), lr=0.1)))
        after = loss_of(m)
        m = model()
        opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.1),
                                           named_parameters=m.named_parameters(),
                                           **methods.parse(ours).kwargs())
        mine = train(m, opt)
        both = hvd.allgather(theirs.unsqueeze(0), name=f"ranks.{peer}")
        got[peer] = dict(diff=(theirs - mine).abs().max().item(),
                         moved=(theirs - torch.cat([p.detach().flatten() for p in
                                                    model().parameters()])).abs().max().item(),
                         ranks_equal=bool(torch.equal(both[0], both[1])),
                         loss_before=before, loss_after=after)
    if hvd.rank() == 0:
        with open(out, "w") as f:
            json.dump(got, f)


if __name__ == "__main__":
    main(sys.argv[1])
