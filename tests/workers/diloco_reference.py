"""Runs on every rank: DiLoCo against an in-process simulation of all N workers that follows the
documented rules (rank r's data at step t is a fixed function of (r, t)), with its pseudo-
gradients sent whole, in fp16, by PowerSGD before its start_step and at full rank (both equal
to whole), and in 8 bits; DiLoCo with outer_lr=1, outer_momentum=0 against LocalSGD step for
step; runs resumed from a state_dict saved mid-way (with and without PowerSGD's state) against
the run that went on. Rank 0 writes JSON to argv[1]."""
import io
import json
import sys

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from averaging_reference import inner
from delayed_reference import batch, make_model, rel_diff

STEPS = 9
CASES = {"nesterov": (hvd_ext.DiLoCo(period=3), "adam", None),
         "momentum": (hvd_ext.DiLoCo(period=2, outer_lr=0.5, nesterov=False), "sgd", None),
         "fragments": (hvd_ext.DiLoCo(period=4, fragments=3), "adam", None),
         "fp16": (hvd_ext.DiLoCo(period=3), "adam", hvd_ext.Compression.fp16),
         "powersgd_before_start": (hvd_ext.DiLoCo(period=3), "adam", hvd_ext.PowerSGD()),
         # rank >= every matrix's smaller side, every matrix compressed: the mean is exact
         "powersgd_full_rank": (hvd_ext.DiLoCo(period=2), "adam", hvd_ext.PowerSGD(
             rank=16, start_step=0, min_compression_rate=1e-3)),
         "int8": (hvd_ext.DiLoCo(period=3), "adam", hvd_ext.Quantize(bits=8))}


class Sim:
    """All N workers in one process, following DiLoCo's documented rules."""

    def __init__(self, cfg, kind, n):
        self.cfg, self.n = cfg, n
        self.models = [make_model() for _ in range(n)]
        self.opts = [inner(m.parameters(), kind) for m in self.models]
        self.theta = self.buf = None
        self.t = 0

    def step(self, fp16):
        if self.theta is None:
            self.theta = [p.detach().clone() for p in self.models[0].parameters()]
            self.buf = [torch.zeros_like(p) for p in self.theta]
        for r, (m, opt) in enumerate(zip(self.models, self.opts)):
            x, y = batch(r, self.t, 0)
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
        self.t += 1
        cfg, T = self.cfg, len(self.theta)
        for j in range(T):
            f = j * cfg.fragments // T
            if self.t % cfg.period != (f * cfg.period // cfg.fragments) % cfg.period:
                continue
            xs = [list(m.parameters())[j].detach() for m in self.models]
            diffs = [self.theta[j] - x for x in xs]
            if fp16:
                diffs = [d.half().float() for d in diffs]
            delta = sum(diffs) / self.n
            self.buf[j] = cfg.outer_momentum * self.buf[j] + delta
            d = delta + cfg.outer_momentum * self.buf[j] if cfg.nesterov else self.buf[j]
            self.theta[j] = self.theta[j] - cfg.outer_lr * d
            with torch.no_grad():
                for x in xs:
                    x.copy_(self.theta[j])


def build(mode, kind, compression=None):
    model = make_model()
    opt = hvd_ext.DistributedOptimizer(inner(model.parameters(), kind), mode=mode,
                                       named_parameters=model.named_parameters(),
                                       compression=compression or hvd_ext.Compression.none)
    return model, opt


def train_step(model, opt, t):
    x, y = batch(hvd.rank(), t, 0)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


def against_simulation(mode, kind, compression):
    model, opt = build(mode, kind, compression)
    sim = Sim(mode, kind, hvd.size())
    worst = 0.0
    for t in range(STEPS):
        train_step(model, opt, t)
        sim.step(compression is hvd_ext.Compression.fp16)
        worst = max(worst, rel_diff(model.parameters(), sim.models[hvd.rank()].parameters()))
    with opt.consensus_params():
        consensus = rel_diff(model.parameters(), sim.theta)
    return dict(worst=worst, consensus=consensus, bytes_sent=opt.bytes_sent,
                moved=rel_diff(model.parameters(), make_model().parameters()))


def against_localsgd():
    ours, opt = build(hvd_ext.DiLoCo(period=3, outer_lr=1.0, outer_momentum=0.0), "sgd")
    theirs, ref = build(hvd_ext.LocalSGD(period=3), "sgd")
    worst = 0.0
    for t in range(STEPS):
        train_step(ours, opt, t)
        train_step(theirs, ref, t)
        worst = max(worst, rel_diff(ours.parameters(), theirs.parameters()))
    return dict(worst=worst)


def resumed(compression=None):
    """Saved after 4 steps (between rounds), resumed in a new optimizer: bit-identical."""
    mode = hvd_ext.DiLoCo(period=3, fragments=2)
    model, opt = build(mode, "adam", compression)
    for t in range(STEPS):
        if t == 4:
            buf = io.BytesIO()
            torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
        train_step(model, opt, t)
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    again, opt2 = build(mode, "adam", compression)
    again.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    for t in range(4, STEPS):
        train_step(again, opt2, t)
    return dict(max_diff=max((a - b).abs().max().item()
                             for a, b in zip(again.parameters(), model.parameters())))


def main():
    hvd.init()
    torch.set_num_threads(1)
    results = {name: against_simulation(*case) for name, case in CASES.items()}
    results["equals_localsgd"] = against_localsgd()
    results["resume"] = resumed()
    # Q warm-started and error feedback from round 0 on: both must come back
    results["resume_powersgd"] = resumed(hvd_ext.PowerSGD(rank=1, start_step=0))
    if hvd.rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
