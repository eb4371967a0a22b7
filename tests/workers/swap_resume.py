"""Runs on every rank: the one-line adoption ``hvd.DistributedOptimizer =
hvd_ext.DistributedOptimizer`` followed by Horovod's resume recipe (rank 0 alone loads the
checkpoint, then every rank calls ``hvd.broadcast_optimizer_state``) must not hang, and leaves
every rank with rank 0's optimizer state.

    swap_resume.py OUT CKPT      rank r writes OUT.<r>
"""
import json
import sys

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from delayed_reference import batch, make_model


def train(model, opt, start, steps):
    for t in range(start, start + steps):
        opt.zero_grad()
        x, y = batch(hvd.rank(), t, 0)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    opt.flush()


def spread(tensors):
    flat = torch.cat([t.detach().double().flatten() for t in tensors])
    return (hvd.allreduce(flat, op=hvd.Max) - hvd.allreduce(flat, op=hvd.Min)).abs().max().item()


SURFACE = ["op", "gradient_predivide_factor", "sparse_as_dense", "process_set",
           "backward_passes_per_step", "_requires_update", "_should_synchronize",
           "_synchronized", "_groups", "_compression"]


def surface(horovods):
    """The attributes of Horovod's optimizer that user code and Horovod's helpers read: those
    of ours that differ from a Horovod optimizer's built with the same arguments."""
    model = make_model()
    kw = dict(named_parameters=model.named_parameters(), backward_passes_per_step=2,
              gradient_predivide_factor=2.0, sparse_as_dense=True)
    theirs = horovods(torch.optim.SGD(model.parameters(), lr=0.1), **kw)
    kw["named_parameters"] = model.named_parameters()
    ours = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), **kw)
    differ = [a for a in SURFACE if getattr(ours, a) != getattr(theirs, a)]
    ours._requires_update = set()  # a known workaround in Horovod scripts: must not break us
    F.cross_entropy(model(batch(hvd.rank(), 0, 0)[0]), batch(hvd.rank(), 0, 0)[1]).backward()
    ours.step()
    return dict(differ=differ)


def main():
    out, ckpt = sys.argv[1], sys.argv[2]
    hvd.init()
    torch.set_num_threads(1)
    horovods = hvd.DistributedOptimizer
    hvd.DistributedOptimizer = hvd_ext.DistributedOptimizer  # the swap, before any optimizer
    results = {"surface": surface(horovods)}
    for name, mode in {"sync": "sync", "delayed": hvd_ext.Delayed(staleness=1)}.items():
        def build():
            model = make_model()
            opt = hvd.DistributedOptimizer(torch.optim.Adam(model.parameters(), lr=0.01),
                                           named_parameters=model.named_parameters(), mode=mode)
            return model, opt
        model, opt = build()
        hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        train(model, opt, 0, 3)
        if hvd.rank() == 0:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, f"{ckpt}.{name}")
        hvd.allreduce(torch.zeros(1), name=f"saved.{name}")  # the checkpoint is on disk
        model, opt = build()
        if hvd.rank() == 0:  # Horovod's recipe: rank 0 alone reads the checkpoint
            saved = torch.load(f"{ckpt}.{name}")
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["opt"])
        hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        hvd.broadcast_optimizer_state(opt, root_rank=0)
        state = [v for s in opt.state_dict()["state"].values() for _, v in sorted(s.items())
                 if torch.is_tensor(v)]
        named = {p: n for n, p in model.named_parameters()}
        results[name] = dict(class_module=type(opt).__module__,
                             parameter_names=opt._parameter_names == named
                             and list(opt._parameter_names.values()) == sorted(named.values()),
                             state_tensors=len(state), state_spread=spread(state),
                             state_step=float(opt.state_dict()["state"][0]["step"]))
        train(model, opt, 3, 2)
        results[name]["param_spread"] = spread(list(model.parameters()))
    with open(f"{out}.{hvd.rank()}", "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
