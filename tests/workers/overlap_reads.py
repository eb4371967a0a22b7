"""Runs on every rank: Sync(overlap_forward=True) against hvd.DistributedOptimizer on the same
data; between steps, what a training script reads must be the finished values: a checkpoint
(model.state_dict() first, then the optimizer's), an evaluation forward, the optimizer state.
Last, a model that reads a parameter outside its module's forward: the backward hook reports it
and every rank stops with the message. Each rank writes argv[1] + '.' + its rank."""
import copy
import json
import sys

import horovod.torch as hvd
import torch
import torch.nn as nn
import torch.nn.functional as F

import horovod_ext as hvd_ext


class Net(nn.Module):
    def __init__(self, functional_read=False):
        super().__init__()
        self.inp = nn.Linear(12, 32)
        self.hidden = nn.Sequential(*[nn.Linear(32, 32) for _ in range(4)])
        self.out = nn.Linear(32, 3)
        self.functional_read = functional_read

    def forward(self, x):
        if self.functional_read:  # the input layer's weight read without calling self.inp
            return self.out(self.hidden(F.relu(F.linear(x, self.inp.weight, self.inp.bias))))
        return self.out(self.hidden(F.relu(self.inp(x))))


def batch(step):
    g = torch.Generator().manual_seed(100 * step + hvd.rank())
    return torch.randn(6, 12, generator=g), torch.randint(0, 3, (6,), generator=g)


def pair():
    torch.manual_seed(0)
    ref = Net()
    ours = copy.deepcopy(ref)
    ref_opt = hvd.DistributedOptimizer(torch.optim.Adam(ref.parameters(), lr=1e-2),
                                       named_parameters=ref.named_parameters())
    opt = hvd_ext.DistributedOptimizer(torch.optim.Adam(ours.parameters(), lr=1e-2),
                                       named_parameters=ours.named_parameters(),
                                       mode=hvd_ext.Sync(overlap_forward=True), bucket_cap_mb=0.002)
    return ref, ref_opt, ours, opt


def step(model, opt, k):
    opt.zero_grad()
    x, y = batch(k)
    F.cross_entropy(model(x), y).backward()
    opt.step()


def max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def main():
    hvd.init()
    rank = hvd.rank()  # Horovod is shut down by the last part
    torch.set_num_threads(1)
    ref, ref_opt, ours, opt = pair()
    res = {"checkpoint": [], "eval": [], "optimizer_state": []}
    for k in range(6):
        step(ref, ref_opt, k)
        step(ours, opt, k)
        if k % 3 == 0:    # checkpoint, model first (Horovod's recipe)
            res["checkpoint"].append(max_diff(ours.state_dict(), ref.state_dict()))
        elif k % 3 == 1:  # evaluation
            x, _ = batch(1000 + k)
            with torch.no_grad():
                res["eval"].append((ours(x) - ref(x)).abs().max().item())
        else:             # the optimizer state, then the parameters
            mine, theirs = opt.state_dict()["state"], ref_opt.state_dict()["state"]
            res["optimizer_state"].append(max(max_diff(mine[i], theirs[i]) for i in theirs))
    opt.flush()
    res["final"] = max_diff(ours.state_dict(), ref.state_dict())
    res["applied_in_forward"] = opt._mode_object.engine.applied_in_forward
    # A parameter read outside its module's forward.
    torch.manual_seed(0)
    bad = Net(functional_read=True)
    bad_opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(bad.parameters(), lr=0.1),
                                           named_parameters=bad.named_parameters(),
                                           mode=hvd_ext.Sync(overlap_forward=True),
                                           bucket_cap_mb=0.002)
    try:
        for k in range(3):
            step(bad, bad_opt, k)
        res["stale_read_error"] = None
    except Exception as e:  # noqa: BLE001 - recorded for the test
        res["stale_read_error"] = f"{type(e).__name__}: {e}"
    with open(f"{sys.argv[1]}.{rank}", "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
