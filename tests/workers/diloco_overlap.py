"""Runs on every rank: overlapped DiLoCo (``overlap``, ``mix``) against an in-process simulation
of all N workers that follows the rules of DESIGN's "Overlapped outer rounds" (rank r's data at
step t is a fixed function of (r, t)): after every step the rank's own parameters and theta,
after the last the outer momentum; then ``flush()`` (every round in flight applied, none left);
a resize mid-flight (the round on the wire dropped and logged). Rank 0 writes JSON to argv[1]."""
import json
import logging
import sys

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from averaging_reference import inner
from delayed_reference import batch, make_model, rel_diff
from diloco_reference import build, train_step
from horovod_ext.codecs.view import flat_offsets

STEPS = 12
CASES = {
    "overlap1": (hvd_ext.DiLoCo(period=4, overlap=1), "adam", None),
    "overlap3_mix": (hvd_ext.DiLoCo(period=4, overlap=3, mix=0.5), "adam", None),
    "fragments_mix": (hvd_ext.DiLoCo(period=6, fragments=2, overlap=2, mix=0.3), "adam", None),
    "momentum_mix_one": (hvd_ext.DiLoCo(period=3, outer_lr=0.5, nesterov=False, overlap=2,
                                        mix=1.0), "sgd", None),
    "local_sgd": (hvd_ext.DiLoCo(period=4, outer_lr=1.0, outer_momentum=0.0, overlap=2), "sgd",
                  None),
    "fp16": (hvd_ext.DiLoCo(period=5, fragments=2, overlap=1, mix=0.5), "adam",
             hvd_ext.Compression.fp16),
}


class Sim:
    """All N workers in one process: rounds in flight as (fragment, due step, mean delta)."""

    def __init__(self, cfg, kind, n, fp16):
        self.cfg, self.n, self.fp16 = cfg, n, fp16
        self.models = [make_model() for _ in range(n)]
        self.opts = [inner(m.parameters(), kind) for m in self.models]
        self.theta = self.buf = None
        self.pending = []
        self.t = 0

    def params(self, j):
        return [list(m.parameters())[j] for m in self.models]

    def members(self, f):
        T, F_ = len(self.theta), self.cfg.fragments
        return [j for j in range(T) if j * F_ // T == f]

    def step(self):
        cfg = self.cfg
        if self.theta is None:
            self.theta = [p.detach().clone() for p in self.models[0].parameters()]
            self.buf = [torch.zeros_like(p) for p in self.theta]
        for r, (m, opt) in enumerate(zip(self.models, self.opts)):
            x, y = batch(r, self.t, 0)
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
        self.t += 1
        while self.pending and self.pending[0][1] == self.t:
            self.apply(*self.pending.pop(0))
        for f in range(cfg.fragments):
            if self.t % cfg.period == (f * cfg.period // cfg.fragments) % cfg.period:
                self.pending.append((f, self.t + cfg.overlap, self.launch(f)))
                if cfg.overlap == 0:
                    self.apply(*self.pending.pop())

    def launch(self, f):
        means = {}
        for j in self.members(f):
            diffs = [self.theta[j] - x.detach() for x in self.params(j)]
            if self.fp16:
                diffs = [d.half().float() for d in diffs]
            means[j] = sum(diffs) / self.n
        return means

    def apply(self, f, due, means):
        cfg = self.cfg
        for j, delta in means.items():
            self.buf[j] = cfg.outer_momentum * self.buf[j] + delta
            d = delta + cfg.outer_momentum * self.buf[j] if cfg.nesterov else self.buf[j]
            self.theta[j] = self.theta[j] - cfg.outer_lr * d
            with torch.no_grad():
                for x in self.params(j):
                    x.copy_((1 - cfg.mix) * self.theta[j] + cfg.mix * x)

    def flush(self):
        while self.pending:
            self.apply(*self.pending.pop(0))


def outer_momentum(opt, sim):
    """The largest relative difference of the saved outer momentum (flat, per fragment) and the
    simulation's."""
    saved = opt.state_dict()["hvd_ext"]["buf"]
    worst = 0.0
    for f, (flat,) in enumerate(saved):
        js = sim.members(f)
        offsets, _ = flat_offsets(sim.buf[j].numel() for j in js)
        got = [flat[o:o + sim.buf[j].numel()].view_as(sim.buf[j]) for o, j in zip(offsets, js)]
        worst = max(worst, rel_diff(got, [sim.buf[j] for j in js]))
    return worst


def against_simulation(mode, kind, compression):
    model, opt = build(mode, kind, compression)
    sim = Sim(mode, kind, hvd.size(), compression is hvd_ext.Compression.fp16)
    worst = theta = 0.0
    for t in range(STEPS):
        train_step(model, opt, t)
        sim.step()
        worst = max(worst, rel_diff(model.parameters(), sim.models[hvd.rank()].parameters()))
        with opt.consensus_params():
            theta = max(theta, rel_diff(model.parameters(), sim.theta))
    in_flight, sim_in_flight = len(opt.state_dict()["hvd_ext"]["flight"]), len(sim.pending)
    buf = outer_momentum(opt, sim)
    opt.flush()
    sim.flush()
    return dict(worst=worst, theta=theta, buf=buf, in_flight=in_flight,
                sim_in_flight=sim_in_flight,
                flushed=rel_diff(model.parameters(), sim.models[hvd.rank()].parameters()),
                left_after_flush=len(opt.state_dict()["hvd_ext"]["flight"]),
                moved=rel_diff(model.parameters(), make_model().parameters()))


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def resized_mid_flight():
    """reset_after_resize() with a round on the wire: dropped, logged, and the next round runs
    from the first rank's theta on every rank."""
    model, opt = build(hvd_ext.DiLoCo(period=4, overlap=2), "adam")
    for t in range(5):                     # the round launched after step 4 is in flight
        train_step(model, opt, t)
    records = Records()
    logging.getLogger("horovod_ext").addHandler(records)
    opt.reset_after_resize()
    logging.getLogger("horovod_ext").removeHandler(records)
    left = len(opt.state_dict()["hvd_ext"]["flight"])
    for t in range(5, 10):                 # agreement at step 6, a round after step 8
        train_step(model, opt, t)
    opt.flush()
    with opt.consensus_params():
        theta = torch.cat([p.detach().flatten() for p in model.parameters()])
    everyone = hvd.allgather(theta.unsqueeze(0), name="overlap.theta")
    return dict(warnings=records.messages, left_after_reset=left,
                theta_spread=(everyone - everyone[0]).abs().max().item(),
                steps=opt.state_dict()["hvd_ext"]["t"])


def main():
    hvd.init()
    torch.set_num_threads(1)
    results = {name: against_simulation(*case) for name, case in CASES.items()}
    results["resized"] = resized_mid_flight()
    if hvd.rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
