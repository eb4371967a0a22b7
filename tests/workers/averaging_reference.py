"""Runs on every rank: Leader (one and two levels, overlap), EASGD and local SGD against an
in-process simulation of all N workers (rank r's data at step t is a fixed function of (r, t)).
Rank 0 writes per case: the largest relative difference between each rank's parameters and its
simulated worker over every step, whether the elected leaders match, and the consensus checks."""
import json
import sys

import horovod.torch as hvd
import torch
import torch.nn.functional as F

import horovod_ext as hvd_ext
from delayed_reference import batch, make_model, rel_diff

STEPS = 7


def cases(n):
    c = {"leader": (hvd_ext.Leader(period=2, pull=0.5), "sgd"),
         "leader_adam_window3": (hvd_ext.Leader(period=2, pull=0.3, window=3), "adam"),
         "leader_overlap": (hvd_ext.Leader(period=2, pull=0.5, overlap=True), "sgd"),
         "leader_overlap_period1": (hvd_ext.Leader(period=1, pull=0.4, overlap=True), "sgd"),
         "leader_tie": (hvd_ext.Leader(period=2, pull=0.5), "sgd"),
         "easgd": (hvd_ext.EASGD(period=2, moving_rate=0.3), "sgd"),
         "easgd_default_rate": (hvd_ext.EASGD(period=1), "adam"),
         "localsgd": (hvd_ext.LocalSGD(period=3), "sgd")}
    if n == 4:
        c["leader_two_level"] = (hvd_ext.Leader(period=2, pull=0.5, global_period=3,
                                                global_pull=0.3, group_size=2), "sgd")
        c["leader_two_level_overlap"] = (hvd_ext.Leader(period=1, pull=0.5, global_period=2,
                                                        global_pull=0.3, group_size=2,
                                                        overlap=True), "adam")
    return c


def inner(params, kind):
    if kind == "adam":
        return torch.optim.Adam(params, lr=0.05)
    return torch.optim.SGD(params, lr=0.3, momentum=0.9)


def data_rank(name, r):
    return 0 if name == "leader_tie" else r


class Sim:
    """All N workers in one process, following the documented rules step by step."""

    def __init__(self, mode, kind, n):
        self.mode, self.n = mode, n
        self.models = [make_model() for _ in range(n)]
        self.opts = [inner(m.parameters(), kind) for m in self.models]
        self.losses = [[] for _ in range(n)]
        self.t = 0
        self.levels = []
        if isinstance(mode, hvd_ext.Leader):
            if mode.global_period is None:
                self.levels.append(dict(period=mode.period, pull=mode.pull,
                                        window=mode.window or mode.period, groups=[list(range(n))]))
            else:
                g = mode.group_size
                self.levels.append(dict(period=mode.period, pull=mode.pull,
                                        window=mode.window or mode.period,
                                        groups=[list(range(s, min(s + g, n))) for s in range(0, n, g)]))
                self.levels.append(dict(period=mode.global_period, pull=mode.global_pull,
                                        window=mode.window or mode.global_period,
                                        groups=[list(range(n))]))
            for lv in self.levels:
                lv.update(pending=None, history=[[] for _ in lv["groups"]])
        self.center = None

    def params(self, r):
        return [p.detach() for p in self.models[r].parameters()]

    def step(self, name):
        if isinstance(self.mode, hvd_ext.EASGD) and self.center is None:
            self.center = [p.clone() for p in self.params(0)]
        for r in range(self.n):
            x, y = batch(data_rank(name, r), self.t, 0)
            self.opts[r].zero_grad()
            loss = F.cross_entropy(self.models[r](x), y)
            loss.backward()
            self.opts[r].step()
            self.losses[r].append(loss.item())
        self.t += 1
        for lv in self.levels:
            if lv["pending"] is not None:
                self.pull(lv, lv["pending"])
                lv["pending"] = None
        for lv in self.levels:
            if self.t % lv["period"] == 0:
                snap = {}
                for gi, group in enumerate(lv["groups"]):
                    means = [sum(self.losses[r][-lv["window"]:]) / len(self.losses[r][-lv["window"]:])
                             for r in group]
                    leader = group[means.index(min(means))]
                    lv["history"][gi].append(leader)
                    snap[gi] = [p.clone() for p in self.params(leader)]
                if self.mode.overlap:
                    lv["pending"] = snap
                else:
                    self.pull(lv, snap)
        if isinstance(self.mode, hvd_ext.EASGD) and self.t % self.mode.period == 0:
            a = self.mode.moving_rate or 0.9 / self.n
            total = [sum(ps) for ps in zip(*(self.params(r) for r in range(self.n)))]
            for r in range(self.n):
                for p, c in zip(self.params(r), self.center):
                    p.sub_(a * (p - c))
            self.center = [c + a * (s - self.n * c) for c, s in zip(self.center, total)]
        if isinstance(self.mode, hvd_ext.LocalSGD) and self.t % self.mode.period == 0:
            mean = [sum(ps) / self.n for ps in zip(*(self.params(r) for r in range(self.n)))]
            for r in range(self.n):
                for p, m in zip(self.params(r), mean):
                    p.copy_(m)

    def pull(self, lv, snap):
        for gi, group in enumerate(lv["groups"]):
            for r in group:
                for p, y in zip(self.params(r), snap[gi]):
                    p.sub_(lv["pull"] * (p - y))

    def consensus(self):
        if self.levels:
            lv = self.levels[-1]
            leader = lv["history"][0][-1] if lv["history"][0] else 0
            return self.params(leader)
        if isinstance(self.mode, hvd_ext.EASGD):
            return self.center
        return [sum(ps) / self.n for ps in zip(*(self.params(r) for r in range(self.n)))]


def run_case(name, mode, kind):
    n, rank = hvd.size(), hvd.rank()
    model = make_model()
    opt = hvd_ext.DistributedOptimizer(inner(model.parameters(), kind),
                                       named_parameters=model.named_parameters(), mode=mode)
    sim = Sim(mode, kind, n)
    worst = 0.0
    for t in range(STEPS):
        x, y = batch(data_rank(name, rank), t, 0)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step(loss=loss)
        sim.step(name)
        worst = max(worst, rel_diff(model.parameters(), sim.params(rank)))
    opt.flush()
    for lv in sim.levels:
        if lv["pending"] is not None:
            sim.pull(lv, lv["pending"])
            lv["pending"] = None
    after_flush = rel_diff(model.parameters(), sim.params(rank))
    # The leaders this rank saw elected equal the simulation's for its groups.
    expected = []
    for lv in sim.levels:
        gi = next(i for i, g in enumerate(lv["groups"]) if rank in g)
        expected.append(lv["history"][gi])
    leaders_ok = opt.leader_history == expected if sim.levels else True
    own = [p.detach().clone() for p in model.parameters()]
    with opt.consensus_params():
        consensus = rel_diff(model.parameters(), sim.consensus())
    restored = all(torch.equal(a, b) for a, b in zip(model.parameters(), own))
    spread = rel_diff(sim.params(rank), sim.params((rank + 1) % n))
    return dict(worst=worst, after_flush=after_flush, leaders_ok=leaders_ok,
                leaders=opt.leader_history if sim.levels else [], consensus=consensus,
                restored=restored, replicas_differ=spread,
                moved=rel_diff(model.parameters(), make_model().parameters()))


def main():
    hvd.init(process_sets="dynamic")
    torch.set_num_threads(1)
    results = {name: run_case(name, *c) for name, c in cases(hvd.size()).items()}
    # Leader without the loss: every rank raises at the first round (none waits forever).
    model = make_model()
    opt = hvd_ext.DistributedOptimizer(inner(model.parameters(), "sgd"),
                                       mode=hvd_ext.Leader(period=2, pull=0.5))
    message = None
    try:
        for t in range(2):
            x, y = batch(hvd.rank(), t, 0)
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()  # no loss=
    except ValueError as e:
        message = str(e)
    results["missing_loss"] = dict(message=message)
    gathered = hvd.allgather_object(results)
    if hvd.rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(gathered, f, indent=1)


if __name__ == "__main__":
    main()
