"""Runs on every rank: what a non-finite gradient or a failing backward hook does.

    failures.py nonfinite OUT   every mode x ignore/skip/raise; rank 1's data at step BAD has a NaN
    failures.py stop OUT CASE   CASE "hook": rank 0's backward hook raises at step BAD;
                                CASE "leader_raise": rank 1 raises on its own NaN (Leader mode).
                                Every rank records what it raised and when; nobody may hang.

The gradient modes are checked against an in-process simulation of all ranks (see
delayed_reference.py) that skips the averaged gradient when it is not finite. Each rank writes
OUT.<rank> (JSON).
"""
import copy
import json
import sys
import time
from collections import deque

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from delayed_reference import batch, make_model, rel_diff

STEPS, BAD = 8, 3


def data(rank, t):
    x, y = batch(rank, t, 0)
    if rank == 1 and t == BAD:
        x[0, 0] = float("nan")
    return x, y


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def train_step(model, opt, t):
    opt.zero_grad()
    x, y = data(hvd.rank(), t)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step(loss=loss)


def run(mode, nonfinite, steps=STEPS, stats=False):
    """Trains; returns (model, optimizer, the error step() raised or None). stats: measure the
    gradient statistics too (their norm then decides whether the full check runs)."""
    model = make_model()
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                                       named_parameters=model.named_parameters(), mode=mode,
                                       nonfinite=nonfinite,
                                       stats=hvd_ext.GradientStats(batch_size=4) if stats else None)
    for t in range(steps):
        try:
            train_step(model, opt, t)
        except FloatingPointError as e:
            return model, opt, f"{type(e).__name__}: {e}"
    opt.flush()
    return model, opt, None


def simulate(k):
    """Delayed SGD (k = 0: sync) of all ranks in one process, skipping non-finite averages."""
    sim = make_model()
    sim_opt = torch.optim.SGD(sim.parameters(), lr=0.1, momentum=0.9)
    grad_model, queue, skipped = copy.deepcopy(sim), deque(), 0

    def apply(avg):
        nonlocal skipped
        if not all(bool(torch.isfinite(g).all()) for g in avg):
            skipped += 1
            return
        for p, g in zip(sim.parameters(), avg):
            p.grad = g.clone()
        sim_opt.step()

    for t in range(STEPS):
        grad_model.load_state_dict(sim.state_dict())
        per_rank = []
        for r in range(hvd.size()):
            grad_model.zero_grad(set_to_none=True)
            x, y = data(r, t)
            F.cross_entropy(grad_model(x), y).backward()
            per_rank.append([p.grad.clone() for p in grad_model.parameters()])
        queue.append([sum(g[i] for g in per_rank) / hvd.size() for i in range(len(per_rank[0]))])
        if len(queue) > k:
            apply(queue.popleft())
    while queue:
        apply(queue.popleft())
    return sim, skipped


MODES = {"sync": "sync", "delayed": hvd_ext.Delayed(staleness=2), "sync_stats": "sync",
         "leader": hvd_ext.Leader(period=2, pull=0.5), "easgd": hvd_ext.EASGD(period=2),
         "local_sgd": hvd_ext.LocalSGD(period=2)}


def nonfinite_cases():
    out = {}
    for name, mode in MODES.items():
        # "raise" in an averaging mode shuts Horovod down: stop_case("leader_raise") tests it.
        gradient_mode = name in ("sync", "delayed", "sync_stats")
        for policy in ("ignore", "skip", "raise") if gradient_mode else ("ignore", "skip"):
            model, opt, error = run(mode, policy, stats=name == "sync_stats")
            p = flat(model)
            finite = bool(torch.isfinite(p).all())
            entry = dict(error=error, finite=finite, skipped=opt.skipped_steps)
            if gradient_mode and policy == "skip":
                sim, sim_skipped = simulate(getattr(mode, "staleness", 0))
                entry.update(vs_simulation=rel_diff(model.parameters(), sim.parameters()),
                             sim_skipped=sim_skipped)
            out[f"{name}-{policy}"] = entry
    return out


def stop_case(case):
    """Returns what this rank raised, and how long after the failure."""
    model = make_model()
    mode = hvd_ext.Leader(period=2, pull=0.5) if case == "leader_raise" else "sync"
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                       named_parameters=model.named_parameters(), mode=mode,
                                       nonfinite="raise", bucket_cap_mb=0.0005,
                                       first_bucket_mb=0.0005)
    if case == "hook" and hvd.rank() == 0:
        engine = opt._mode_object.engine
        launch = engine.launcher._launch  # fault injection: the second bucket's launch fails at step BAD

        def failing_launch(s, bucket):
            if engine.grad_steps == BAD and bucket.index == 1:
                raise RuntimeError("injected failure")
            return launch(s, bucket)
        engine.launcher._launch = failing_launch
    failed_at = None
    for t in range(STEPS):
        if t == BAD:
            failed_at = time.monotonic()
        try:
            train_step(model, opt, t)
        except Exception as e:  # noqa: BLE001 - what each rank sees is the result
            cause = e.__cause__
            return dict(step=t, type=type(e).__name__, error=str(e),
                        cause=None if cause is None else f"{type(cause).__name__}: {cause}",
                        seconds=time.monotonic() - failed_at, n_buckets=opt._mode_object.engine.bucket_count
                        if hasattr(opt._mode_object, "engine") else None)
    return dict(step=None)


def main():
    hvd.init()
    torch.set_num_threads(1)
    hvd.allreduce(torch.zeros(1), name="warm_up")
    rank = hvd.rank()  # Horovod may be shut down when the case ends
    result = nonfinite_cases() if sys.argv[1] == "nonfinite" else stop_case(sys.argv[3])
    with open(f"{sys.argv[2]}.{rank}", "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
