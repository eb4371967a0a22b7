"""DiLoCo against sync, local SGD, EASGD and Leader SGD (and the gradient codecs: PowerSGD rank 1
and 4, 8- and 4-bit quantization, all in Sync) on real text: a character-level language
model (16 characters of context -> the next one, --hidden-layers tanh layers of 256) on the
first 300k characters of Python's standard-library sources, 4 ranks, AdamW inside every method,
the same steps and batch for all.

    horovodrun --gloo -np 4 python -m benchmarks.science.diloco_text --json docs/results/diloco_text.json

For each method the inner learning rate is chosen from --lrs by the validation loss at the end
(cosine schedule over --steps); the chosen run is repeated with every --seeds seed, and the
validation and test loss of the consensus model, bytes sent per rank for training (not for
the evaluations' consensus) and the largest single step's bytes are recorded. Methods are
named as the catalog names them (horovod_ext.methods: diloco-H32-o1.0-m0.5-f4+fp16); the
stored runs' names (diloco_H32_o1.0_m0.5_frag4_fp16) read too.
Validation loss every --eval-every steps, against steps and against bytes, goes to a PNG beside
the JSON (a heatmap when every method is a DiLoCo outer setting; benchmarks/diloco_charts.py). Ranks may
share cores: wall-clock is not compared here.
"""
import argparse
import contextlib
import math
import time

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from benchmarks import peers
from benchmarks.diloco_charts import plot
from benchmarks.science.training import write_results
from benchmarks.tasks import task
from horovod_ext import methods
from horovod_ext.runtime.progress import progress

DEFAULT_METHODS = ["sync", "localsgd_H32", "easgd_H32", "leader_H32"] + [
    "diloco_H8", "diloco_H8_o1.0_m0.5", "diloco_H32", "diloco_H32_o1.0_m0.5",
    "diloco_H32_o1.0_m0.5_frag4", "diloco_H32_o1.0_m0.5_fp16"]


def method(name):
    """The DistributedOptimizer arguments of a method named as the catalog names them
    (``horovod_ext.methods``: ``diloco-H32-o1.0-m0.5+fp16``), or as the stored runs do
    (``diloco_H32_o1.0_m0.5_frag4_fp16``, ``powersgd_r4``); ``mode=None`` for a peer that
    trains on its own (benchmarks/peers.py: ``ddp-powersgd``, ``ddp-fp16``)."""
    if own_peer(name) is not None:
        return dict(mode=None)
    try:
        return methods.parse(name).kwargs()
    except ValueError as e:
        raise ValueError(f"--methods: {e}") from None


def own_peer(name):
    """The peer that trains on its own named ``name`` (or as the stored runs name it), or
    None."""
    peer = peers.REGISTRY.get(peers.STORED_AS.get(name, name))
    return peer if peer is not None and peer.trains is None else None


class DDPHooked:
    """A peer's DDP module and optimizer (peers.REGISTRY: ``wrap``, its settings there), in
    this loop's optimizer interface. Its bytes are not counted (None)."""

    def __init__(self, peer, model, opt):
        (self.ddp, self.opt), self.bytes_sent = peer.wrap(model, opt), 0.0
        self.param_groups = opt.param_groups

    def zero_grad(self):
        self.opt.zero_grad()

    def step(self, loss=None):
        self.opt.step()

    def flush(self):
        pass

    @contextlib.contextmanager
    def consensus_params(self):
        """DDP's local SGD is evaluated, as ours, at the average of the ranks' parameters (the
        ranks' own parameters come back after); the other peers hold one model already."""
        from torch.distributed.optim import PostLocalSGDOptimizer
        if not isinstance(self.opt, PostLocalSGDOptimizer):
            yield
            return
        import torch.distributed as dist
        params = [p for g in self.param_groups for p in g["params"]]
        own = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p in params:
                dist.all_reduce(p.data)
                p.data.div_(dist.get_world_size())
        try:
            yield
        finally:
            with torch.no_grad():
                for p, o in zip(params, own):
                    p.copy_(o)


def run(data, name, lr, seed, args):
    make, x, y, x_va, y_va, x_te, y_te = data
    torch.manual_seed(seed)
    model = make()
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    inner = torch.optim.AdamW(model.parameters(), lr=lr)
    if own_peer(name) is not None:
        opt = DDPHooked(own_peer(name), model, inner)
        forward = opt.ddp
    else:
        opt = hvd_ext.DistributedOptimizer(inner, named_parameters=model.named_parameters(),
                                           **method(name))
        forward = model
    curve, peak, evaluating, seconds = [], 0.0, 0.0, 0.0
    counted = not isinstance(opt, DDPHooked)
    for step in range(args.steps):
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(seed * 1_000_003 + step * hvd.size() + hvd.rank())
        idx = torch.randint(0, len(y), (args.batch,), generator=g)
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        before = opt.bytes_sent
        opt.zero_grad()
        loss = F.cross_entropy(forward(x[idx]), y[idx])
        loss.backward()
        opt.step(loss=loss)
        peak = max(peak, opt.bytes_sent - before)
        seconds += time.perf_counter() - t0
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            evaluating -= opt.bytes_sent  # local SGD's consensus is an allreduce: not training
            with opt.consensus_params():
                val = loss_of(model, x_va, y_va)
            evaluating += opt.bytes_sent
            curve.append((step + 1, val, opt.bytes_sent - evaluating if counted else None,
                          seconds))
    opt.flush()
    with opt.consensus_params():
        test = loss_of(model, x_te, y_te)
    return dict(lr=lr, seed=seed, val=curve[-1][1], test=test,
                bytes=curve[-1][2] if counted else None, peak_step_bytes=peak if counted else None,
                curve=curve)


def loss_of(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y).item()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1024)
    p.add_argument("--batch", type=int, default=32, help="per rank")
    p.add_argument("--eval-every", type=int, default=64)
    p.add_argument("--lrs", default="0.001,0.003,0.01,0.03")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help="comma-separated; see method()")
    p.add_argument("--hidden-layers", type=int, default=1, help="of the text model")
    p.add_argument("--width", type=int, default=256, help="of the text model's layers")
    p.add_argument("--json", default="results/diloco_text.json")
    args = p.parse_args()
    hvd.init()
    torch.set_num_threads(1)
    data = task("chars", args.hidden_layers, args.width)
    lrs = [float(v) for v in args.lrs.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    methods = args.methods.split(",")
    for name in methods:
        method(name)  # an unknown name fails here, before any training
    out = dict(ranks=hvd.size(), steps=args.steps, batch=args.batch, lrs=lrs,
               hidden_layers=args.hidden_layers, width=args.width, methods={})
    jobs = [(m, lr) for m in methods for lr in lrs]
    tried = {m: [] for m in methods}
    for m, lr in progress(jobs, desc="lr grid", enabled=hvd.rank() == 0):
        tried[m].append(run(data, m, lr, seeds[0], args))
    for m in progress(methods, desc="seeds", enabled=hvd.rank() == 0):
        best = min(tried[m], key=lambda r: r["val"])
        runs = [best] + [run(data, m, best["lr"], s, args) for s in seeds[1:]]
        out["methods"][m] = dict(lr=best["lr"], grid=[(r["lr"], r["val"]) for r in tried[m]],
                                 runs=runs)
        if hvd.rank() == 0:
            vals = ", ".join(f"{r['val']:.4f}" for r in runs)
            sent = "not counted" if runs[0]["bytes"] is None else \
                f"{runs[0]['bytes'] / 1e6:.2f}, peak step {runs[0]['peak_step_bytes'] / 1e3:.1f} kB"
            print(f"{m:18s} lr {best['lr']:g}  val {vals}  test {runs[0]['test']:.4f}  "
                  f"MB/rank {sent}", flush=True)
    write_results(out, args.json, plot)


if __name__ == "__main__":
    main()
