"""Runs on every rank: trains one model with hvd.DistributedOptimizer and a copy with
hvd_ext.DistributedOptimizer on the same per-rank data, for each case, and rank 0 writes the
largest relative parameter difference per case to the JSON file given as argv[1]. With argv[2]
"overlap" ours is Sync(overlap_forward=True), flushed after its last step."""
import copy
import json
import sys
import warnings

import horovod.torch as hvd
import torch
import torch.nn as nn
import torch.nn.functional as F

import horovod_ext as hvd_ext

STEPS = 10
OVERLAP = sys.argv[2:] == ["overlap"]


class Net(nn.Module):
    """Conv + MLP; optionally an unused layer and a float64 layer (two dtypes in one model)."""

    def __init__(self, unused=False, float64=False, deep=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc1 = nn.Linear(8 * 8 * 8, 33)
        self.deep = nn.Sequential(*[nn.Linear(33, 33) for _ in range(10 if deep else 0)])
        self.fc2 = nn.Linear(33, 10, dtype=torch.float64 if float64 else torch.float32)
        self.unused = nn.Linear(7, 7) if unused else None

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1)
        x = self.deep(F.relu(self.fc1(x)))
        return self.fc2(x.to(self.fc2.weight.dtype)).float()


CASES = {
    "sgd_momentum": dict(),
    "adam": dict(optim="adam"),
    "fp16_compression": dict(compression="fp16", tol=1e-3),
    "op_sum": dict(op="sum"),
    "predivide_2": dict(predivide=2.0),
    "backward_passes_2": dict(bpps=2),
    "synchronize_clip": dict(clip=True),
    "unused_parameter": dict(unused=True),
    "set_to_none": dict(set_to_none=True),
    "model_zero_grad": dict(model_zero_grad=True),
    "two_dtypes": dict(float64=True),
    "many_buckets": dict(deep=True, cap_mb=0.004, min_buckets=10),
    "groups_3": dict(groups=3),
}


def make_opt(model, case, ext):
    if case.get("optim") == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    comp = {"fp16": hvd_ext.Compression.fp16}.get(
        case.get("compression"), hvd.Compression.none)
    kw = dict(named_parameters=model.named_parameters(), compression=comp,
              backward_passes_per_step=case.get("bpps", 1),
              op=hvd.Sum if case.get("op") == "sum" else hvd.Average,
              gradient_predivide_factor=case.get("predivide", 1.0), groups=case.get("groups"))
    if ext:
        cap = case.get("cap_mb", 25)
        return hvd_ext.DistributedOptimizer(opt, bucket_cap_mb=cap, first_bucket_mb=min(cap, 1),
                                            mode=hvd_ext.Sync(overlap_forward=OVERLAP and not case.get("plain")),
                                            **kw)
    return hvd.DistributedOptimizer(opt, **kw)


def train(model, opt, case, ext):
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)  # runs a step with zero gradients
    for step in range(STEPS):
        if not ext:
            opt.zero_grad()  # Horovod's takes no argument; torch's default sets grads to None
        elif case.get("model_zero_grad"):
            model.zero_grad(set_to_none=True)  # p.grad = None behind the optimizer's back
        else:
            opt.zero_grad(set_to_none=case.get("set_to_none", False))
        for k in range(case.get("bpps", 1)):
            g = torch.Generator().manual_seed(1000 * step + 10 * hvd.rank() + k)
            x = torch.randn(4 + hvd.rank(), 3, 16, 16, generator=g)
            y = torch.randint(0, 10, (x.shape[0],), generator=g)
            F.cross_entropy(model(x), y).backward()
        if case.get("clip"):
            opt.synchronize()
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            with opt.skip_synchronize():
                opt.step()
        else:
            opt.step()
    if ext:
        opt.flush()  # overlap_forward: the last step's updates not read by a forward yet


def main():
    hvd.init()
    torch.set_num_threads(1)
    warnings.simplefilter("error")  # e.g. Horovod's "step() after synchronize()" warning
    results = {}
    for name, case in CASES.items():
        torch.manual_seed(0)
        arch = dict(unused=case.get("unused", False), float64=case.get("float64", False),
                    deep=case.get("deep", False))
        base = Net(**arch)
        ours = copy.deepcopy(base)
        base_opt, ours_opt = make_opt(base, case, False), make_opt(ours, case, True)
        train(base, base_opt, case, False)
        train(ours, ours_opt, case, True)
        err = max(((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
                  for a, b in zip(ours.parameters(), base.parameters()))
        moved = max((a - b).abs().max().item()
                    for a, b in zip(ours.parameters(), Net(**arch).parameters()))
        agree = hvd.allreduce(torch.cat([p.detach().double().flatten() for p in ours.parameters()]),
                              op=hvd.Max) - torch.cat([p.detach().double().flatten()
                                                       for p in ours.parameters()])
        results[name] = dict(rel_err=err, tol=case.get("tol", 1e-5), moved=moved,
                             n_buckets=ours_opt._mode_object.engine.bucket_count,
                             min_buckets=case.get("min_buckets", 0),
                             rank_spread=agree.abs().max().item(),
                             ext_class=type(ours_opt).__mro__[1].__name__,
                             applied_in_forward=getattr(ours_opt._mode_object.engine,
                                                        "applied_in_forward", 0))
    # Overlap: buckets are launched from the hooks, during backward, not at step().
    torch.manual_seed(0)
    model = Net(deep=True)
    opt = make_opt(model, {"cap_mb": 0.004, "plain": True}, True)
    engine = opt._mode_object.engine
    for _ in range(2):  # the second step runs on the plan rebuilt from the real gradient order
        opt.zero_grad()
        x = torch.randn(2, 3, 16, 16, requires_grad=True)
        seen = []
        x.register_hook(lambda g: seen.append(len(engine.current.launched)))  # fires at the end of backward
        F.cross_entropy(model(x), torch.tensor([1, 2])).backward()
        after_backward = len(engine.current.launched)
        opt.step()
    results["overlap"] = dict(in_flight_before_input_grad=seen[0], after_backward=after_backward,
                              n_buckets=engine.bucket_count)
    # The "zero_grad while allreduce pending" guard.
    model = Net()
    opt = make_opt(model, {"plain": True}, True)
    F.cross_entropy(model(torch.randn(2, 3, 16, 16)), torch.tensor([1, 2])).backward()
    try:
        opt.zero_grad()
        results["zero_grad_guard"] = dict(raised=False)
    except AssertionError as e:
        results["zero_grad_guard"] = dict(raised="before optimizer.step()" in str(e))
    opt.step()
    if hvd.rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
