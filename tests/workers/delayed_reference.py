"""Runs on every rank: delayed mode against an in-process simulation of all ranks.

Every rank can compute every rank's gradient (the data of rank r at step t is a fixed function
of (r, t)), so it simulates delayed SGD exactly: average the N gradients of step t, apply the
average of step t - k. Rank 0 writes, per case, the largest relative difference between the
distributed parameters and the simulation's, over every step and after flush(), to argv[1].
"""
import copy
import json
import sys
from collections import deque

import horovod.torch as hvd
import torch
import torch.nn as nn
import torch.nn.functional as F

import horovod_ext as hvd_ext

STEPS = 7


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 3))


def batch(rank, step, k):
    g = torch.Generator().manual_seed(100_000 + 1000 * step + 10 * rank + k)
    return torch.randn(5, 10, generator=g), torch.randint(0, 3, (5,), generator=g)


def inner(params, case):
    if case["optim"] == "adam":
        return torch.optim.Adam(params, lr=0.05)
    return torch.optim.SGD(params, lr=0.3, momentum=0.9, weight_decay=1e-3)


def grads_at(model, rank, step, bpps):
    model.zero_grad(set_to_none=True)
    for k in range(bpps):
        x, y = batch(rank, step, k)
        F.cross_entropy(model(x), y).backward()
    return [p.grad.detach().clone() for p in model.parameters()]


def rel_diff(a_params, b_params):
    return max(((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
               for a, b in zip(a_params, b_params))


def run_case(case):
    n, k, c, bpps = hvd.size(), case["k"], case.get("c", 0.0), case.get("bpps", 1)
    model = make_model()
    sim = copy.deepcopy(model)
    sim_opt = inner(sim.parameters(), case)
    comp = hvd.Compression.fp16 if case.get("fp16") else hvd.Compression.none
    opt = hvd_ext.DistributedOptimizer(inner(model.parameters(), case),
                                       named_parameters=model.named_parameters(),
                                       mode=hvd_ext.Delayed(staleness=k, compensation=c),
                                       backward_passes_per_step=bpps, compression=comp)
    # Horovod's broadcast_optimizer_state() initialises the state with one local step on zero
    # gradients; it must not enter the delayed pipeline. The simulation takes the same step.
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    for p in sim.parameters():
        p.grad = torch.zeros_like(p)
    sim_opt.step()
    queue, worst, inner_steps = deque(), 0.0, []
    pending_after_broadcast = opt._mode_object.engine.in_flight
    for t in range(STEPS):
        # Distributed step on this rank's data.
        opt.zero_grad(set_to_none=True)
        for j in range(bpps):
            x, y = batch(hvd.rank(), t, j)
            F.cross_entropy(model(x), y).backward()
        before = torch.cat([p.detach().flatten() for p in model.parameters()])
        opt.step()
        inner_steps.append(not torch.equal(before, torch.cat([p.detach().flatten()
                                                               for p in model.parameters()])))
        # Simulation of all ranks.
        per_rank = [grads_at(sim, r, t, bpps) for r in range(n)]
        avg = [sum(g[i] for g in per_rank) / n for i in range(len(per_rank[0]))]
        queue.append((avg, [p.detach().clone() for p in sim.parameters()]))
        if len(queue) > k:
            apply_sim(sim, sim_opt, queue.popleft(), c)
        worst = max(worst, rel_diff(model.parameters(), sim.parameters()))
    opt.flush()
    while queue:
        apply_sim(sim, sim_opt, queue.popleft(), c)
    after_flush = rel_diff(model.parameters(), sim.parameters())
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    spread = (hvd.allreduce(flat, op=hvd.Max) - hvd.allreduce(flat, op=hvd.Min)).abs().max()
    moved = rel_diff(model.parameters(), make_model().parameters())
    return dict(worst=worst, after_flush=after_flush, rank_spread=spread.item(), moved=moved,
                warmup_ok=inner_steps == [t >= k for t in range(STEPS)], final=flat.tolist(),
                pending_after_broadcast=pending_after_broadcast, in_flight_after_flush=opt._mode_object.engine.in_flight)


def apply_sim(sim, sim_opt, entry, c):
    g, w0 = entry
    for p, gi, w0i in zip(sim.parameters(), g, w0):
        p.grad = gi + c * gi * gi * (p.detach() - w0i) if c > 0 else gi.clone()
    sim_opt.step()


CASES = {f"k{k}_{o}": dict(k=k, optim=o) for k in (1, 2, 3) for o in ("sgd", "adam")}
CASES.update({"k1_sgd_compensation": dict(k=1, optim="sgd", c=2.0),
              "k2_adam_compensation": dict(k=2, optim="adam", c=2.0),
              "k1_sgd_bpps2_fp16": dict(k=1, optim="sgd", bpps=2, fp16=True, tol=5e-3)})


def main():
    hvd.init()
    torch.set_num_threads(1)
    results = {name: dict(run_case(case), tol=case.get("tol", 2e-5)) for name, case in CASES.items()}
    if hvd.rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
