"""Training steps of a ``torch.compile``d model under hvd_ext.DistributedOptimizer against the same
steps of the eager model under hvd.DistributedOptimizer, in one job. Three ways: the compiled
model with eager autograd; compiled autograd around ``backward()``; and forward + backward in one
compiled function with ``torch._dynamo.config.compiled_autograd`` on (the documented recipe).
Writes JSON to argv[1]: per way, the largest parameter difference and compiled autograd's count
of captured graphs.

    horovodrun -np 2 python tests/workers/compiled_step.py OUT.json
"""
import json
import sys

import horovod.torch as hvd
import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters

import horovod_ext as hvd_ext

STEPS = 3


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def batches():
    g = torch.Generator().manual_seed(hvd.rank())
    return [(torch.randn(32, 8, generator=g), torch.randn(32, 4, generator=g))
            for _ in range(STEPS)]


def train(way):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if way == "horovod":
        opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters())
    else:
        opt = hvd_ext.DistributedOptimizer(opt, named_parameters=model.named_parameters())
    compiled = torch.compile(model) if way != "horovod" else model

    @torch.compile
    def forward_backward(x, y):
        loss = F.mse_loss(model(x), y)
        loss.backward()
        return loss

    for x, y in batches():
        opt.zero_grad()
        if way == "compiled_function":
            torch._dynamo.config.compiled_autograd = True
            try:
                forward_backward(x, y)
            finally:
                torch._dynamo.config.compiled_autograd = False
        else:
            loss = F.mse_loss(compiled(x), y)
            if way == "compiled_autograd":
                with torch._dynamo.compiled_autograd._enable(torch.compile):
                    loss.backward()
            else:
                loss.backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def main():
    hvd.init()
    want = train("horovod")
    out = {}
    for way in ("compiled_model", "compiled_autograd", "compiled_function"):
        before = counters["compiled_autograd"]["captures"]
        got = train(way)
        out[way] = {"max_diff": (got - want).abs().max().item(),
                    "moved": (got - train_start()).abs().max().item(),
                    "captures": counters["compiled_autograd"]["captures"] - before}
    if hvd.rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(out, f, indent=1)


def train_start():
    return torch.cat([p.detach().flatten() for p in make_model().parameters()])


if __name__ == "__main__":
    main()
