"""Model-averaging modes: Leader SGD (one or two levels), EASGD and local SGD.

No gradient is allreduced: every rank's inner step uses its own gradient, and every ``period``
steps the ranks' parameters are pulled together. Parameters travel as one flat buffer per
(dtype, device): the pack kernel fills it, one collective moves it, and a fused kernel applies
it (pull toward the leader, the EASGD worker+center update) without per-tensor temporaries.
"""
import math
from collections import deque
from contextlib import contextmanager

import horovod.torch as hvd
import torch

from horovod_ext import _C
from horovod_ext.failure import drain, nonfinite_error, nonfinite_names, stop_all_ranks
from horovod_ext.modes import EASGD, Leader, LocalSGD
from horovod_ext.wire import wire_bytes

_GROUP_SETS = {}  # ranks -> Horovod process set, shared by every optimizer of the process


class ParamFlats:
    """The parameters as flat buffers, one per (dtype, device), with their element offsets."""

    def __init__(self, params):
        by_key = {}
        for p in params:
            by_key.setdefault((p.dtype, p.device), []).append(p)
        self.groups = []
        for ps in by_key.values():
            offsets = [0]
            for p in ps[:-1]:
                offsets.append(offsets[-1] + p.numel())
            self.groups.append((ps, offsets, offsets[-1] + ps[-1].numel()))

    def empty(self):
        """New flat buffers of this layout."""
        return [torch.empty(n, dtype=ps[0].dtype, device=ps[0].device) for ps, _, n in self.groups]

    def pack(self, flats):
        with torch.no_grad():
            for (ps, offs, _), f in zip(self.groups, flats):
                _C.pack([p.detach() for p in ps], f, offs, 1.0)

    def unpack(self, flats):
        with torch.no_grad():
            for (ps, offs, _), f in zip(self.groups, flats):
                _C.unpack(f, offs, [p.data for p in ps], 1.0, False)

    def pull(self, flats, lam):
        with torch.no_grad():
            for (ps, offs, _), f in zip(self.groups, flats):
                _C.pull([p.data for p in ps], f, offs, lam)


def _ranks(process_set):
    return list(range(hvd.size())) if process_set.ranks is None else list(process_set.ranks)


def _group_process_set(ranks):
    ranks = tuple(ranks)
    if ranks not in _GROUP_SETS:
        try:
            _GROUP_SETS[ranks] = hvd.add_process_set(list(ranks))
        except NotImplementedError as e:
            raise ValueError("the two-level Leader mode forms its groups as Horovod process sets: "
                             "call hvd.init(process_sets='dynamic') or set "
                             f"HOROVOD_DYNAMIC_PROCESS_SETS=1 ({e})") from None
    return _GROUP_SETS[ranks]


class _Level:
    """One leader level: its rounds, the ranks it elects among, its broadcast buffers."""

    def __init__(self, tag, period, pull, window, process_set, flats):
        self.tag, self.period, self.pull, self.window = tag, period, pull, window
        self.process_set = process_set
        self.ranks = _ranks(process_set)
        self.buffers = flats.empty()
        self.leader = self.ranks[0]  # leader of the last round (lowest rank before any)
        self.pending = None          # handles of an overlapped broadcast, or "ready" after load
        self.history = []            # leaders elected, in order


class _AveragingOptimizer(torch.optim.Optimizer):
    def __init__(self, params, names, process_set, mode, nonfinite):
        super(self.__class__, self).__init__(params)
        self.mode = mode
        self.nonfinite = nonfinite
        self.skipped_steps = 0       # inner steps this rank skipped for a non-finite gradient
        self.process_set = process_set
        self._params = [p for g in self.param_groups for p in g["params"]]
        self._names = [names[p] for p in self._params]
        self._name_of = names
        self._flats = ParamFlats(self._params)
        self._t = 0                  # steps taken
        self.bytes_sent = 0.0        # by this rank, for every collective launched (see wire.py)
        self._losses = deque(maxlen=1)  # (loss, missing) of the last steps
        self._levels = []
        self._center = None          # EASGD center, flat buffers equal on all ranks
        self._sums = None            # EASGD / local SGD: buffers for the sum of all parameters
        n = process_set.size()
        if isinstance(mode, Leader):
            if mode.global_period is None:
                self._levels.append(_Level("local", mode.period, mode.pull,
                                           mode.window or mode.period, process_set, self._flats))
            else:
                if process_set is not hvd.global_process_set:
                    raise ValueError("the two-level Leader mode runs on the global process set")
                g = mode.group_size or hvd.local_size()
                groups = [list(range(s, min(s + g, n))) for s in range(0, n, g)]
                sets = [_group_process_set(r) for r in groups]  # every rank creates every set
                mine = sets[hvd.rank() // g]
                self._levels.append(_Level("local", mode.period, mode.pull,
                                           mode.window or mode.period, mine, self._flats))
                self._levels.append(_Level("global", mode.global_period, mode.global_pull,
                                           mode.window or mode.global_period, process_set,
                                           self._flats))
            self._losses = deque(maxlen=max(lv.window for lv in self._levels))
        else:
            self._sums = self._flats.empty()
            self._alpha = (mode.moving_rate or 0.9 / n) if isinstance(mode, EASGD) else None

    # ---- the step ---------------------------------------------------------------------------
    def step(self, closure=None, loss=None):
        """The wrapped optimizer's step on this rank's own gradient, then this mode's round when
        one is due. Leader modes need the step's loss: ``step(loss=loss)`` or a closure that
        returns it."""
        if isinstance(self.mode, EASGD) and self._center is None:
            self._init_center()
        if closure is not None and self.nonfinite != "ignore":  # its gradient is the one to check
            with torch.enable_grad():
                result = closure()
            closure = None
        else:
            result = None
        if not self._bad_gradient():
            inner = super(self.__class__, self).step(closure)
            result = inner if result is None else result
        if loss is None:
            loss = result
        if isinstance(loss, torch.Tensor):
            loss = loss.detach().item()
        self._losses.append((0.0, True) if loss is None else (float(loss), False))
        self._t += 1
        for level in self._levels:
            if level.pending is not None:  # overlap: last step's leader broadcast lands now
                self._apply_pending(level)
        for level in self._levels:
            if self._t % level.period == 0:
                self._leader_round(level)
        if isinstance(self.mode, EASGD) and self._t % self.mode.period == 0:
            self._sum_params()
            with torch.no_grad():
                for (ps, offs, _), c, s in zip(self._flats.groups, self._center, self._sums):
                    _C.easgd([p.data for p in ps], c, s, offs, self._alpha,
                             float(self.process_set.size()))
        if isinstance(self.mode, LocalSGD) and self._t % self.mode.period == 0:
            self._average_params()
        return result

    def _bad_gradient(self):
        """``nonfinite`` on this rank's own gradient (each rank steps on its own here, so a skip
        needs no agreement; the averaging rounds still run). True to skip the inner step."""
        if self.nonfinite == "ignore":
            return False
        bad = nonfinite_names(
            [([p.grad for p in ps if p.grad is not None],
              [self._name_of[p] for p in ps if p.grad is not None])
             for ps, _, _ in self._flats.groups])
        if bad and self.nonfinite == "raise":  # the others would wait at the next round
            stop_all_ranks(nonfinite_error(bad, f"on rank {hvd.rank()} at step {self._t}"))
        self.skipped_steps += bool(bad)
        return bool(bad)

    def _init_center(self):
        self._center = self._flats.empty()
        self._flats.pack(self._center)
        root = _ranks(self.process_set)[0]
        for i, c in enumerate(self._center):
            hvd.broadcast_(c, root_rank=root, name=f"hvd_ext.easgd.center.{i}",
                           process_set=self.process_set)
            self._count("broadcast", c, self.process_set)

    def _count(self, kind, tensor, process_set):
        self.bytes_sent += wire_bytes(kind, tensor.numel() * tensor.element_size(),
                                      process_set.size())

    def _sum_params(self):
        self._flats.pack(self._sums)
        for i, s in enumerate(self._sums):
            hvd.allreduce_(s, name=f"hvd_ext.{self.mode.name}.sum.{i}", op=hvd.Sum,
                           process_set=self.process_set)
            self._count("allreduce", s, self.process_set)

    def _average_params(self):
        self._sum_params()
        n = self.process_set.size()
        with torch.no_grad():
            for (ps, offs, _), s in zip(self._flats.groups, self._sums):
                _C.unpack(s, offs, [p.data for p in ps], 1.0 / n, False)

    def _elect(self, level):
        """Every rank of the level learns each rank's mean recent loss; the lowest wins, ties to
        the lowest rank. A rank that passed no loss makes every rank raise, not wait."""
        recent = list(self._losses)[-level.window:]
        missing = any(m for _, m in recent)
        mean = sum(v for v, _ in recent) / len(recent)
        mean = mean if math.isfinite(mean) else math.inf  # a diverged rank never leads
        got = hvd.allgather(torch.tensor([[0.0 if missing else mean, float(missing)]],
                                         dtype=torch.float64),
                            name=f"hvd_ext.leader.{level.tag}.loss", process_set=level.process_set)
        self.bytes_sent += wire_bytes("allgather", 16, level.process_set.size())
        if got[:, 1].any():
            ranks = [level.ranks[i] for i in torch.nonzero(got[:, 1]).flatten().tolist()]
            raise ValueError("mode Leader elects the rank with the lowest recent loss: pass it "
                             "with optimizer.step(loss=loss) (or return it from the closure); "
                             f"ranks {ranks} did not")
        level.leader = level.ranks[int(torch.argmin(got[:, 0]))]  # first minimum: lowest rank
        level.history.append(level.leader)

    def _leader_round(self, level):
        self._elect(level)
        if hvd.rank() == level.leader:
            self._flats.pack(level.buffers)
        handles = [hvd.broadcast_async_(b, root_rank=level.leader,
                                        name=f"hvd_ext.leader.{level.tag}.params.{i}",
                                        process_set=level.process_set)
                   for i, b in enumerate(level.buffers)]
        for b in level.buffers:
            self._count("broadcast", b, level.process_set)
        level.pending = handles
        if not self.mode.overlap:
            self._apply_pending(level)

    def _apply_pending(self, level):
        if level.pending != "ready":
            for h in level.pending:
                hvd.synchronize(h)
        level.pending = None
        self._flats.pull(level.buffers, level.pull)

    # ---- Horovod's optimizer interface (nothing to synchronize: no gradient allreduce) -------
    def synchronize(self):
        """No gradient is allreduced in this mode; nothing to wait for."""

    @contextmanager
    def skip_synchronize(self):
        yield

    def flush(self):
        """Applies an overlapped leader pull still pending; leaves nothing in flight."""
        for level in self._levels:
            if level.pending is not None:
                self._apply_pending(level)

    @contextmanager
    def consensus_params(self):
        """Loads the model to evaluate, then restores every rank's own parameters: the leader's
        (of the last round; a fresh broadcast of its current parameters), the EASGD center, or
        the average of all ranks (local SGD). A collective for leader and local SGD: call it on
        every rank."""
        own = self._flats.empty()
        self._flats.pack(own)
        if self._levels:
            level = self._levels[-1]  # the global level when there are two
            tmp = self._flats.empty()
            if hvd.rank() == level.leader:
                self._flats.pack(tmp)
            for i, b in enumerate(tmp):
                hvd.broadcast_(b, root_rank=level.leader, name=f"hvd_ext.consensus.{i}",
                               process_set=level.process_set)
            self._flats.unpack(tmp)
        elif isinstance(self.mode, EASGD):
            if self._center is not None:
                self._flats.unpack(self._center)
        else:
            self._average_params()
        try:
            yield
        finally:
            self._flats.unpack(own)

    def state_dict(self):
        """The wrapped optimizer's state plus, under ``"hvd_ext"``, this mode's: step counter,
        recent losses, leaders, pending overlapped pulls, EASGD center."""
        sd = super(self.__class__, self).state_dict()
        levels = []
        for level in self._levels:
            if level.pending not in (None, "ready"):
                for h in level.pending:
                    hvd.synchronize(h)
                level.pending = "ready"
            levels.append({"leader": level.leader, "history": list(level.history),
                           "pending": [b.clone() for b in level.buffers]
                           if level.pending is not None else None})
        sd["hvd_ext"] = {"mode": self.mode.name, "t": self._t, "losses": list(self._losses),
                         "levels": levels,
                         "center": None if self._center is None else [c.clone() for c in self._center]}
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        ours = state_dict.pop("hvd_ext", None)
        super(self.__class__, self).load_state_dict(state_dict)
        if ours is None:
            return
        if ours["mode"] != self.mode.name:
            raise ValueError(f"state_dict was saved in mode {ours['mode']!r}, this optimizer runs "
                             f"mode {self.mode.name!r}")
        self._drop_pending()
        self._t = ours["t"]
        self._losses.clear()
        self._losses.extend(tuple(x) for x in ours["losses"])
        for level, saved in zip(self._levels, ours["levels"]):
            level.leader, level.history = saved["leader"], list(saved["history"])
            if level.leader not in level.ranks:  # saved by a larger job (elastic)
                level.leader = level.ranks[0]
            if saved["pending"] is not None:
                for b, s in zip(level.buffers, saved["pending"]):
                    b.copy_(s)
                level.pending = "ready"
        if ours["center"] is not None:
            self._center = [c.clone() for c in ours["center"]]

    def _drop_pending(self):
        """Forgets overlapped pulls in flight (waited for; a failed one, when a rank died, too)."""
        for level in self._levels:
            if level.pending not in (None, "ready"):
                drain(level.pending)
            level.pending = None

    def _on_reset(self):
        """After Horovod elastic re-forms the job: the one-level modes follow the new ranks."""
        if len(self._levels) > 1:
            raise ValueError("the two-level Leader mode cannot follow an elastic resize (its "
                             "groups are fixed process sets); use a one-level Leader")
        for level in self._levels:
            level.ranks = _ranks(level.process_set)
            if level.leader not in level.ranks:
                level.leader = level.ranks[0]
        if isinstance(self.mode, EASGD) and self.mode.moving_rate is None:
            self._alpha = 0.9 / self.process_set.size()

    @property
    def leader_history(self):
        """Leaders elected so far, per level (local first)."""
        return [list(level.history) for level in self._levels]
