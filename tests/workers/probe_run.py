"""Probes a small model (with a layer the forward does not use) on every rank: writes each
rank's trace, whether the parameters and optimizer state came back, and the probe's errors for
bad arguments. argv[1]: output JSON prefix."""
import json
import sys

import horovod.torch as hvd
import torch
import torch.nn as nn
import torch.nn.functional as F

import horovod_ext as hvd_ext


class Net(nn.Module):
    """A small MLP, a layer its forward never uses (its gradient stays None) and a frozen one
    the optimizer does not hold."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 256), nn.Tanh(), nn.Linear(256, 256), nn.Tanh(),
                                  nn.Linear(256, 10))
        self.unused = nn.Linear(8, 8)
        self.frozen = nn.Linear(32, 32).requires_grad_(False)

    def forward(self, x):
        return self.body(self.frozen(x))


hvd.init()
torch.manual_seed(0)
model = Net()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
g = torch.Generator().manual_seed(hvd.rank())


def closure():
    x = torch.randn(16, 32, generator=g)
    loss = F.cross_entropy(model(x), (x[:, 0] > 0).long())
    loss.backward()
    return loss


before = [p.detach().clone() for p in model.parameters()]
trace = hvd_ext.probe(model, opt, closure, batch_size=16, steps=6)
untimed = hvd_ext.probe(model, opt, closure, batch_size=16, steps=3, rounds=False)
errors = {}
for kwargs in ({"batch_size": 0}, {"batch_size": 16, "steps": 2},
               {"batch_size": 16, "closure": "loss"}, {"batch_size": 16, "rounds": "no"}):
    try:
        hvd_ext.probe(model, opt, **dict({"closure": closure}, **kwargs))
    except ValueError as e:
        errors[str(kwargs)] = str(e)
out = dict(trace, restored=all(torch.equal(a, p) for a, p in zip(before, model.parameters())),
           optimizer_state=len(opt.state_dict()["state"]), errors=errors,
           untimed_periodic=untimed["periodic_ms"], untimed_wire=untimed["wire_ms"],
           params_bytes=sum(p.numel() * 4 for p in model.parameters() if p.requires_grad))
with open(f"{sys.argv[1]}.{hvd.rank()}.json", "w") as f:
    json.dump(out, f)
