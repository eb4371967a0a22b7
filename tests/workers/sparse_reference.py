"""Runs on every rank: a model with a sparse embedding trained with hvd_ext.DistributedOptimizer
(sync and delayed, sparse_as_dense False and True, SparseAdam and SGD) against
- hvd.DistributedOptimizer on the same data (sync cases it supports), and
- a reference built from Horovod's own collectives in this process: each step's gradients
  reduced as Horovod reduces them (sparse: gathered by ``hvd.sparse_allreduce_async``; with
  sparse_as_dense or dense: ``hvd.allreduce``, the sparse ones made sparse again), applied
  ``staleness`` steps later by the plain torch optimizer, what is left applied at the end (flush).
Rank 0 writes the largest relative parameter difference per case to the JSON file argv[1]."""
import copy
import io
import json
import sys
from collections import deque

import horovod.torch as hvd
import torch
import torch.nn as nn
import torch.nn.functional as F

import horovod_ext as hvd_ext

STEPS = 8
UNUSED_STEP = 4  # rank 1 does not use the embedding in this step (reference cases only)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(30, 6, sparse=True)
        self.head = nn.Linear(6, 3)

    def forward(self, idx, use_emb=True):
        h = self.emb(idx).mean(1) if use_emb else torch.ones(idx.shape[0], 6)
        return self.head(h)


def inner(model, optim):
    if optim == "sparse_adam":  # SparseAdam takes only sparse gradients: the head stays fixed
        model.head.requires_grad_(False)
        return torch.optim.SparseAdam([model.emb.weight], lr=0.05), \
            [("emb.weight", model.emb.weight)]
    return torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9), \
        list(model.named_parameters())


def loss_of(model, step, unused):
    g = torch.Generator().manual_seed(100 * step + hvd.rank())
    idx = torch.randint(0, 30, (4, 5), generator=g)
    y = torch.randint(0, 3, (4,), generator=g)
    use = not (unused and step == UNUSED_STEP and hvd.rank() == 1)
    return F.cross_entropy(model(idx, use), y)


def backward(loss):
    if loss.requires_grad:  # SparseAdam's model without its embedding has nothing to train
        loss.backward()


def train(model, opt, case, unused):
    for step in range(STEPS):
        opt.zero_grad()
        backward(loss_of(model, step, unused))
        opt.step()
    if hasattr(opt, "flush"):
        opt.flush()


def reduce_like_horovod(i, p, sparse_as_dense):
    g = p.grad
    if g is None:
        return None
    if g.is_sparse and not sparse_as_dense:
        return hvd.sparse_allreduce_async(g, name=f"ref.{i}", op=hvd.Average)()
    out = hvd.allreduce(g.to_dense() if g.is_sparse else g, op=hvd.Average)
    return out.to_sparse() if g.is_sparse else out


def train_reference(model, opt, case, unused):
    """Horovod's collectives, applied ``staleness`` steps late (0: sync)."""
    params = [p for group in opt.param_groups for p in group["params"]]
    queue = deque()
    emb = model.emb.weight
    for step in range(STEPS):
        opt.zero_grad()
        backward(loss_of(model, step, unused))
        if emb.grad is None:  # unused on this rank: an empty sparse gradient
            emb.grad = torch.zeros_like(emb).to_sparse(1)
        queue.append([reduce_like_horovod(i, p, case["sparse_as_dense"])
                      for i, p in enumerate(params)])
        if len(queue) > case["staleness"]:
            for p, g in zip(params, queue.popleft()):
                p.grad = g
            opt.step()
    while queue:
        for p, g in zip(params, queue.popleft()):
            p.grad = g
        opt.step()


def run_case(case):
    torch.manual_seed(0)
    base = Net()
    ours = copy.deepcopy(base)
    start = base.emb.weight.detach().clone()
    mode = hvd_ext.Delayed(staleness=1) if case["staleness"] else hvd_ext.Sync()
    opt, names = inner(ours, case["optim"])
    opt = hvd_ext.DistributedOptimizer(opt, named_parameters=names, mode=mode,
                                       sparse_as_dense=case["sparse_as_dense"])
    train(ours, opt, case, case["against"] == "reference")
    ref_opt, ref_names = inner(base, case["optim"])
    if case["against"] == "horovod":
        ref_opt = hvd.DistributedOptimizer(ref_opt, named_parameters=ref_names,
                                           sparse_as_dense=case["sparse_as_dense"])
        train(base, ref_opt, case, False)
    else:
        train_reference(base, ref_opt, case, True)
    err = max(((a - b).abs().max() / b.abs().max()).item()
              for a, b in zip(ours.parameters(), base.parameters()))
    moved = (ours.emb.weight - start).abs().max().item()
    engine = opt._mode_object.engine
    return dict(rel_err=err, moved=moved, grad_sparse=ours.emb.weight.grad is not None
                and ours.emb.weight.grad.is_sparse,
                gathered=len(engine.sparse.gathered),
                in_plan=ours.emb.weight in engine.current.locator)


def resume_case():
    """Delayed mode saved with a sparse gradient in flight, resumed in a new optimizer: the same
    parameters as the run that went on."""
    def build(model):
        opt, names = inner(model, "sparse_adam")
        return hvd_ext.DistributedOptimizer(opt, named_parameters=names,
                                            mode=hvd_ext.Delayed(staleness=1))
    torch.manual_seed(0)
    model = Net()
    opt = build(model)
    for step in range(STEPS):
        if step == UNUSED_STEP:
            buf = io.BytesIO()
            torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
            pending = opt.state_dict()["hvd_ext"]["pending"][0]["grads"][0]
        opt.zero_grad()
        backward(loss_of(model, step, False))
        opt.step()
    opt.flush()
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    resumed = Net()
    resumed.load_state_dict(saved["model"])
    opt2 = build(resumed)
    opt2.load_state_dict(saved["opt"])
    for step in range(UNUSED_STEP, STEPS):
        opt2.zero_grad()
        backward(loss_of(resumed, step, False))
        opt2.step()
    opt2.flush()
    return dict(saved_sparse=pending.is_sparse,
                max_diff=(resumed.emb.weight - model.emb.weight).abs().max().item())


def main():
    hvd.init()
    torch.set_num_threads(1)
    results = {}
    for optim in ("sparse_adam", "sgd"):
        for sparse_as_dense in (False, True):
            for against, staleness in (("horovod", 0), ("reference", 0), ("reference", 1)):
                name = f"{optim}_dense{int(sparse_as_dense)}_{against}_s{staleness}"
                results[name] = run_case(dict(optim=optim, sparse_as_dense=sparse_as_dense,
                                              against=against, staleness=staleness))
    results["resume"] = resume_case()
    if hvd.rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
