"""Runs on every rank (3 ranks): Horovod's documented recipes, written for hvd.DistributedOptimizer,
run with it and with hvd_ext.DistributedOptimizer swapped in (sync and delayed mode), on the same
per-rank data. Rank 0 writes, per recipe, the sync run's largest relative difference from
Horovod's, whether every rank ended with the same parameters, and the loss on a fixed batch
before and after, to the JSON file argv[1].

Recipes: AMP (autocast + GradScaler: synchronize, unscale_, clip, step in skip_synchronize),
also with backward_passes_per_step=2; clipping; torch.compile(model); parameters unused in some
steps (differently per rank); two optimizers over one model (GAN) with requires_grad toggled;
an optimizer over a process set of ranks 0 and 2; backward_passes_per_step=2 over epochs of 5
batches, the last accumulation of each epoch short."""
import json
import sys
import warnings

import horovod.torch as hvd
import torch
import torch.nn as nn
import torch.nn.functional as F

import horovod_ext as hvd_ext

STEPS = 20


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 24)
        self.fc2 = nn.Linear(24, 24)
        self.side = nn.Linear(24, 24)  # used in some steps only (the "unused" recipe)
        self.out = nn.Linear(24, 4)

    def forward(self, x, side=False):
        h = torch.relu(self.fc2(torch.relu(self.fc1(x))))
        return self.out(torch.relu(self.side(h)) if side else h)


TEACHER = torch.randn(12, 4, generator=torch.Generator().manual_seed(7))


def batch(step, k=0, n=8):
    """Inputs of this rank, step and pass; labels a fixed function of them (learnable)."""
    x = torch.randn(n, 12, generator=torch.Generator().manual_seed(1000 * step + 10 * hvd.rank() + k))
    return x, (x @ TEACHER).argmax(1)


def finish(opt, apply=None):
    """The end of training: delayed gradients still in flight are applied (ours only)."""
    if hasattr(opt, "flush"):
        opt.flush(apply)


def wrap(ext, mode, opt, **kw):
    if ext:
        return hvd_ext.DistributedOptimizer(opt, mode=mode, **kw)
    return hvd.DistributedOptimizer(opt, **kw)


def sgd(model, ext, mode, **kw):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return wrap(ext, mode, opt, named_parameters=model.named_parameters(), **kw)


def amp(model, ext, mode, bpps=1):
    opt = sgd(model, ext, mode, backward_passes_per_step=bpps)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)

    def apply(o):  # after synchronize(): unscale, clip, step, update
        scaler.unscale_(o)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        with o.skip_synchronize():
            scaler.step(o)
        scaler.update()

    for step in range(STEPS):
        opt.zero_grad()
        for k in range(bpps):
            x, y = batch(step, k)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y) / bpps
            scaler.scale(loss).backward()
        opt.synchronize()
        apply(opt)
    finish(opt, apply)


def clip(model, ext, mode):
    opt = sgd(model, ext, mode)

    def apply(o):
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        with o.skip_synchronize():
            o.step()

    for step in range(STEPS):
        opt.zero_grad()
        F.cross_entropy(model(batch(step)[0]), batch(step)[1]).backward()
        opt.synchronize()
        apply(opt)
    finish(opt, apply)


def plain(model, ext, mode, side_of=lambda step: False):
    opt = sgd(model, ext, mode)
    plain_loop(model, opt, side_of)
    finish(opt)


def plain_loop(model, opt, side_of=lambda step: False):
    for step in range(STEPS):
        opt.zero_grad()
        x, y = batch(step)
        F.cross_entropy(model(x, side_of(step)), y).backward()
        opt.step()


def compiled(model, ext, mode):
    plain(torch.compile(model), ext, mode)


def unused(model, ext, mode):
    plain(model, ext, mode, side_of=lambda step: step % (2 + hvd.rank()) == 0)


def gan(model, ext, mode):
    """fc1+fc2 the generator G, side+out the discriminator D (its own optimizer each)."""
    g_params = [(n, p) for n, p in model.named_parameters() if n.startswith("fc")]
    d_params = [(n, p) for n, p in model.named_parameters() if not n.startswith("fc")]
    opt_g = wrap(ext, mode, torch.optim.Adam([p for _, p in g_params], lr=1e-2),
                 named_parameters=g_params)
    opt_d = wrap(ext, mode, torch.optim.Adam([p for _, p in d_params], lr=1e-2),
                 named_parameters=d_params)

    def gen(x):
        return torch.relu(model.fc2(torch.relu(model.fc1(x))))

    def disc(h):
        return model.out(torch.relu(model.side(h)))[:, 0]

    for step in range(STEPS):
        x, _ = batch(step)
        real = torch.randn(8, 24, generator=torch.Generator().manual_seed(step + hvd.rank()))
        opt_d.zero_grad()
        d_loss = F.softplus(-disc(real)).mean() + F.softplus(disc(gen(x).detach())).mean()
        d_loss.backward()
        opt_d.step()
        for _, p in d_params:
            p.requires_grad_(False)
        opt_g.zero_grad()
        F.softplus(-disc(gen(x))).mean().backward()
        opt_g.step()
        for _, p in d_params:
            p.requires_grad_(True)
    finish(opt_d)
    finish(opt_g)


def short_last_accumulation(model, ext, mode, batches=5, bpps=2):
    opt = sgd(model, ext, mode, backward_passes_per_step=bpps)
    for epoch in range(2):
        opt.zero_grad()
        for i in range(batches):
            x, y = batch(10 * epoch + i)
            (F.cross_entropy(model(x), y) / bpps).backward()
            if (i + 1) % bpps == 0 or i + 1 == batches:  # the epoch's last step is short
                opt.step()
                opt.zero_grad()
    finish(opt)


EVEN = None  # the process set of ranks 0 and 2, made in main()
RECIPES = {"amp": amp, "amp_bpps2": lambda m, e, mode: amp(m, e, mode, bpps=2), "clip": clip,
           "compile": compiled, "unused": unused, "gan": gan,
           "short_last_accumulation": short_last_accumulation}


def run(name, ext, mode):
    torch.manual_seed(0)
    model = Net()
    x, y = batch(99)
    before = F.cross_entropy(model(x), y).item()
    RECIPES[name](model, ext, mode)
    after = F.cross_entropy(model(x), y).item()
    return torch.cat([p.detach().flatten() for p in model.parameters()]), before, after


def outcome(name, mode):
    ref, _, _ = run(name, False, None)
    ours, before, after = run(name, True, mode)
    spread = (hvd.allreduce(ours, op=hvd.Max, name=f"recipes.{name}") - ours).abs().max().item()
    rel = ((ours - ref).abs().max() / ref.abs().max()).item()
    return dict(rel_err=rel, rank_spread=spread, before=before, after=after)


def main():
    global EVEN
    hvd.init(process_sets="dynamic")
    torch.set_num_threads(1)
    warnings.simplefilter("error", UserWarning)  # e.g. "step() after synchronize()"
    warnings.filterwarnings("ignore", module="torch._inductor")
    results = {}
    for name in RECIPES:
        results[f"{name}_sync"] = outcome(name, hvd_ext.Sync())
        results[f"{name}_delayed"] = outcome(name, hvd_ext.Delayed(staleness=1))
    EVEN = hvd.add_process_set([0, 2])
    results["process_set"] = process_set_outcome()
    rank = hvd.rank()
    results["too_many_passes"] = too_many_passes()  # last: it shuts Horovod down
    if rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(results, f, indent=1)


def process_set_outcome():
    """Ranks 0 and 2 train together over EVEN; rank 1 trains alone with a plain optimizer."""
    out = {}
    for ext in (False, True):
        torch.manual_seed(0)
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        if EVEN.included():
            opt = wrap(ext, hvd_ext.Sync(), opt, named_parameters=model.named_parameters(),
                       process_set=EVEN)
        plain_loop(model, opt)
        out[ext] = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = hvd.allgather(out[True][None], name="recipes.process_set")  # rank order
    return dict(rel_err=((out[True] - out[False]).abs().max() / out[False].abs().max()).item(),
                even_spread=(gathered[0] - gathered[2]).abs().max().item(),
                odd_differs=(gathered[0] - gathered[1]).abs().max().item())


def too_many_passes():
    """Three backward passes with backward_passes_per_step=2 and no step() between: the epoch
    loop that skips the short step. Every rank raises, naming the fix."""
    torch.manual_seed(0)
    model = Net()
    opt = sgd(model, True, hvd_ext.Sync(), backward_passes_per_step=2)
    try:
        for i in range(3):
            F.cross_entropy(model(batch(i)[0]), batch(i)[1]).backward()
        opt.step()
    except RuntimeError as e:
        return dict(message=str(e))
    return dict(message=None)


if __name__ == "__main__":
    main()
