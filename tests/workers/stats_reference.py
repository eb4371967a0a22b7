"""Runs on every rank: gradient statistics against known truths and an in-process computation.

- least_squares: loss 0.5 (x.w - y)^2 with x ~ N(0, I_d), y = x.w* + e, e ~ N(0, s2), at a fixed
  w (lr 0). With u = w - w*, the per-sample gradient x (x.u - e) has mean G = u and covariance
  u u^T + (|u|^2 + s2) I (Isserlis), so |G|^2 = |u|^2 and tr(S) = |u|^2 + d (|u|^2 + s2).
- formulas_<mode>: a small MLP trained with several buckets; at every step each rank computes
  every rank's gradient in float64 at the current parameters, and the history must hold the
  same norms and the unbiased |G|^2 / tr(S) of DESIGN's formulas (delayed: the entry of step t
  arrives k steps later, and flush() delivers the rest).
- errors: the refusals, on every rank.
Rank 0 writes the results to argv[1]; with argv[1] == "single" (one rank) it checks the refusal
of a one-rank run and exits non-zero if it did not happen.
"""
import copy
import json
import sys

import horovod.torch as hvd
import torch
import torch.nn as nn
import torch.nn.functional as F

import horovod_ext as hvd_ext

D, S2, B, LS_STEPS = 32, 1.0, 16, 400


def least_squares():
    g = torch.Generator().manual_seed(7)
    w_star = torch.randn(D, generator=g)
    u = torch.randn(D, generator=g)
    u /= u.norm()
    model = nn.Linear(D, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_((w_star + u).view(1, D))
    stats = hvd_ext.GradientStats(batch_size=B, ema=0.995)
    opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.0),
                                       named_parameters=model.named_parameters(), stats=stats)
    data = torch.Generator().manual_seed(1000 + hvd.rank())
    for _ in range(LS_STEPS):
        x = torch.randn(B, D, generator=data)
        y = x @ w_star + torch.randn(B, generator=data) * S2 ** 0.5
        opt.zero_grad()
        (0.5 * (model(x).view(-1) - y).pow(2).mean()).backward()
        opt.step()
    if hvd.rank() == 0:
        stats.save(sys.argv[1] + ".stats.json")
    g2_true, tr_true = 1.0, 1.0 + D * (1.0 + S2)
    return dict(g2=stats.true_grad_sq_norm, g2_true=g2_true, trace=stats.trace_cov,
                trace_true=tr_true, noise_scale=stats.noise_scale, noise_true=tr_true / g2_true,
                steps=stats.steps, critical_batch=stats.critical_batch)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 40), nn.Tanh(), nn.Linear(40, 40), nn.Tanh(),
                         nn.Linear(40, 5))


def batch(rank, step):
    g = torch.Generator().manual_seed(50_000 + 100 * step + rank)
    x = torch.randn(6, 12, generator=g)
    return x, x[:, :5].argmax(1)  # a learnable rule: the mean gradient is not lost in noise


def formulas(mode, steps=9, every=1):
    n = hvd.size()
    model = mlp()
    ref = copy.deepcopy(model).double()
    stats = hvd_ext.GradientStats(batch_size=6, ema=0.9, every=every)
    opt = hvd_ext.DistributedOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.5),
        named_parameters=model.named_parameters(), mode=mode, stats=stats,
        bucket_cap_mb=1e-3, first_bucket_mb=5e-4)  # several buckets
    expected = []
    for t in range(steps):
        # Every rank's gradient at the current (rank-identical) parameters, in float64.
        with torch.no_grad():
            for p, q in zip(ref.parameters(), model.parameters()):
                p.copy_(q)
        grads = []
        for r in range(n):
            ref.zero_grad()
            x, y = batch(r, t)
            F.cross_entropy(ref(x.double()), y).backward()
            grads.append(torch.cat([p.grad.flatten() for p in ref.parameters()]))
        local = sum(g.pow(2).sum() for g in grads).item() / n
        global_ = (sum(grads) / n).pow(2).sum().item()
        expected.append((t, local, global_))
        opt.zero_grad()
        x, y = batch(hvd.rank(), t)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    seen_before_flush = stats.steps
    opt.flush()
    b_small, b_big = 6, 6 * n
    worst, g2_ema, tr_ema, weight = 0.0, 0.0, 0.0, 0.0
    for (t, local, global_), h in zip(expected[::every], stats.history):
        g2 = (b_big * global_ - b_small * local) / (b_big - b_small)
        tr = (local - global_) / (1 / b_small - 1 / b_big)
        scale_g2 = (b_big * global_ + b_small * local) / (b_big - b_small)
        worst = max(worst, abs(h["local_sq_norm"] - local) / local,
                    abs(h["grad_sq_norm"] - global_) / global_,
                    abs(h["g2"] - g2) / scale_g2, abs(h["trace"] - tr) / tr)
        g2_ema, tr_ema = 0.9 * g2_ema + 0.1 * g2, 0.9 * tr_ema + 0.1 * tr
        weight = 0.9 * weight + 0.1
    return dict(worst=worst, steps=[h["step"] for h in stats.history],
                seen_before_flush=seen_before_flush,
                noise_scale=stats.noise_scale, noise_scale_ref=tr_ema / g2_ema if g2_ema > 0 else None,
                trace=stats.trace_cov, trace_ref=tr_ema / weight,
                local=stats.local_grad_sq_norm, local_ref=expected[::every][-1][1],
                bucket_count=opt._mode_object.engine.bucket_count)


def refusal(**kwargs):
    model = mlp()
    try:
        hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                     named_parameters=model.named_parameters(), **kwargs)
    except ValueError as e:
        return str(e)
    return None


def errors():
    st = lambda: hvd_ext.GradientStats(batch_size=4)  # noqa: E731
    shared = st()
    first = refusal(stats=shared)
    return {"leader": refusal(mode=hvd_ext.Leader(period=2, pull=0.5), stats=st()),
            "sum": refusal(op=hvd.Sum, stats=st()),
            "fp16": refusal(compression=hvd.Compression.fp16, stats=st()),
            "not_stats": refusal(stats=4),
            "reused": (first, refusal(stats=shared))}


def main():
    hvd.init()
    torch.set_num_threads(1)
    if sys.argv[1] == "single":
        message = refusal(stats=hvd_ext.GradientStats(batch_size=4))
        print("refused:", message)
        sys.exit(0 if message and "ranks" in message else 1)
    results = {"least_squares": least_squares(), "formulas_sync": formulas(hvd_ext.Sync()),
               "formulas_delayed": formulas(hvd_ext.Delayed(staleness=2, compensation=1.0)),
               "formulas_every": formulas(hvd_ext.Delayed(staleness=1), every=3),
               "errors": errors()}
    gathered = hvd.allgather_object(results["errors"])
    results["errors_same_on_every_rank"] = all(e == gathered[0] for e in gathered)
    if hvd.rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
