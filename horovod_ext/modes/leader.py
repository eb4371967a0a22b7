"""Leader SGD (LSGD), one or two levels: every ``period`` steps the rank with the lowest recent
loss broadcasts its parameters and every rank is pulled toward them."""
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

import horovod.torch as hvd
import torch

from horovod_ext.modes.averaging import AveragingConfig, AveragingMode, ranks_of
from horovod_ext.runtime import checks, log
from horovod_ext.runtime.failure import drain
from horovod_ext.runtime.wire import wire_bytes

_GROUP_SETS: Dict[tuple, Any] = {}  # ranks -> Horovod process set, shared by every optimizer of the process


@dataclass(frozen=True)
class Leader(AveragingConfig):
    """Leader SGD (LSGD): no gradient allreduce; every rank steps on its own gradient. After step t
    with (t + 1) % period == 0, the rank with the lowest mean of its last ``window`` losses
    (default: period; ties go to the lowest rank) broadcasts its parameters and every rank does
    x <- x - pull * (x - x_leader). With ``global_period``/``global_pull`` the period/pull level
    runs inside groups (the ranks of one host, or ``group_size`` consecutive ranks) and the global
    level across all ranks, local round first when both fall on one step. ``overlap=True``
    launches the leader's broadcast asynchronously and applies its pull at the end of the next
    step (with the leader's parameters of the round's step).

    Args:
        period: steps between rounds.
        pull: lambda in (0, 1], how far each rank moves toward the leader.
        window: losses averaged to elect the leader (None: period).
        global_period: steps between the global rounds (with ``global_pull``).
        global_pull: the global rounds' pull.
        group_size: ranks per group of the local level (None: the ranks of one host).
        overlap: apply each round's pull one step later, its broadcast on the wire meanwhile.
    """

    period: int
    pull: float
    window: Optional[int] = None
    global_period: Optional[int] = None
    global_pull: Optional[float] = None
    group_size: Optional[int] = None
    overlap: bool = False
    name = "leader"

    def __post_init__(self):
        checks.positive_int("Leader.period", self.period)
        checks.fraction("Leader.pull", self.pull)
        if self.window is not None:
            checks.positive_int("Leader.window", self.window)
        if (self.global_period is None) != (self.global_pull is None):
            raise ValueError("Leader.global_period and Leader.global_pull must be given together")
        if self.global_period is not None:
            checks.positive_int("Leader.global_period", self.global_period)
            checks.fraction("Leader.global_pull", self.global_pull)
        if self.group_size is not None:
            checks.positive_int("Leader.group_size", self.group_size)
            if self.global_period is None:
                raise ValueError("Leader.group_size needs the two-level mode (global_period, "
                                 "global_pull)")
        if not isinstance(self.overlap, bool):
            raise ValueError(f"Leader.overlap must be a bool; got {self.overlap!r}")

    def build(self, optimizer, inner, settings):
        return LeaderMode(self, optimizer, inner, settings)


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
        self.ranks = ranks_of(process_set)
        self.buffers = flats.empty()
        self.leader = self.ranks[0]  # leader of the last round (lowest rank before any)
        self.handles = None          # of an overlapped broadcast in flight
        self.received = False        # the buffers hold a leader's parameters not pulled yet
        self.history = []            # leaders elected, in order


class LeaderMode(AveragingMode):
    def __init__(self, config, optimizer, inner, settings):
        levels = [(config.period, config.pull)]
        if config.global_period is not None:
            levels.append((config.global_period, config.global_pull))
        super().__init__(config, optimizer, inner, settings,
                         loss_window=max(config.window or period for period, _ in levels))
        ps = settings.process_set
        if config.global_period is None:
            self._levels = [self._level("local", config.period, config.pull, ps)]
        else:
            if ps is not hvd.global_process_set:
                raise ValueError("the two-level Leader mode runs on the global process set")
            n, g = ps.size(), config.group_size or hvd.local_size()
            groups = [list(range(s, min(s + g, n))) for s in range(0, n, g)]
            sets = [_group_process_set(r) for r in groups]  # every rank creates every set
            self._levels = [self._level("local", config.period, config.pull,
                                        sets[hvd.rank() // g]),
                            self._level("global", config.global_period, config.global_pull, ps)]

    def _level(self, tag, period, pull, process_set):
        return _Level(tag, period, pull, self.config.window or period, process_set, self._flats)

    def buffers(self):
        return [b for level in self._levels for b in level.buffers]

    @property
    def leader_history(self):
        """Leaders elected so far, per level (local first)."""
        return [list(level.history) for level in self._levels]

    def after_inner_step(self):
        for level in self._levels:
            if level.handles is not None or level.received:  # overlap: last round lands now
                self._apply_pull(level)
        for level in self._levels:
            if self._t % level.period == 0:
                self._round(level)

    def _elect(self, level):
        """Every rank of the level learns each rank's mean recent loss; the lowest wins, ties to
        the lowest rank. A rank that passed no loss makes every rank raise, not wait."""
        self.meet(f"the {level.tag} leader election after step {self._t}")
        recent = list(self._losses)[-level.window:]
        missing = any(m for _, m in recent)
        mean = sum(v for v, _ in recent) / len(recent)
        mean = mean if math.isfinite(mean) else math.inf  # a diverged rank never leads
        got = hvd.allgather(torch.tensor([[0.0 if missing else mean, float(missing)]],
                                         dtype=torch.float64),
                            name=f"hvd_ext.leader.{level.tag}.loss", process_set=level.process_set)
        self._sent += wire_bytes("allgather", 16, level.process_set.size())
        if got[:, 1].any():
            ranks = [level.ranks[i] for i in torch.nonzero(got[:, 1]).flatten().tolist()]
            raise ValueError("mode Leader elects the rank with the lowest recent loss: pass it "
                             "with optimizer.step(loss=loss) (or return it from the closure); "
                             f"ranks {ranks} did not")
        level.leader = level.ranks[int(torch.argmin(got[:, 0]))]  # first minimum: lowest rank
        level.history.append(level.leader)

    def _round(self, level):
        self._elect(level)
        if hvd.rank() == level.leader:
            self._flats.copy_params_to(level.buffers)
        level.handles = [hvd.broadcast_async_(b, root_rank=level.leader,
                                              name=f"hvd_ext.leader.{level.tag}.params.{i}",
                                              process_set=level.process_set)
                         for i, b in enumerate(level.buffers)]
        for b in level.buffers:
            self.count("broadcast", b, level.process_set)
        if not self.config.overlap:
            self._apply_pull(level)

    def _receive(self, level):
        for h in level.handles or []:
            hvd.synchronize(h)
        level.handles, level.received = None, True

    def _apply_pull(self, level):
        self._receive(level)
        level.received = False
        self._flats.pull_params_toward(level.buffers, level.pull)

    def flush(self, apply=None):
        """Applies an overlapped leader pull still pending; leaves nothing in flight."""
        for level in self._levels:
            if level.handles is not None or level.received:
                self._apply_pull(level)

    def consensus_params(self):
        """The leader's parameters (the last round's leader's, broadcast afresh). A collective:
        call it on every rank."""
        return self.showing(self._load_leader_params)

    def _load_leader_params(self):
        level = self._levels[-1]  # the global level when there are two
        self.meet("the leader's broadcast for consensus_params()")
        tmp = self._flats.empty()
        if hvd.rank() == level.leader:
            self._flats.copy_params_to(tmp)
        for i, b in enumerate(tmp):
            hvd.broadcast_(b, root_rank=level.leader, name=f"hvd_ext.consensus.{i}",
                           process_set=level.process_set)
        self._flats.load_params_from(tmp)

    def state(self):
        """Adds the leaders and the overlapped pulls not applied yet."""
        levels = []
        for level in self._levels:
            if level.handles is not None:
                self._receive(level)
            levels.append({"leader": level.leader, "history": list(level.history),
                           "pending": [b.clone() for b in level.buffers]
                           if level.received else None})
        return dict(super().state(), levels=levels)

    def load_state(self, saved):
        super().load_state(saved)
        for level in self._levels:  # forget overlapped pulls in flight (a failed one as well)
            drain(level.handles or [])
            level.handles, level.received = None, False
        for level, entry in zip(self._levels, saved["levels"]):
            level.leader, level.history = entry["leader"], list(entry["history"])
            if level.leader not in level.ranks:  # saved by a larger job (elastic)
                level.leader = level.ranks[0]
            if entry["pending"] is not None:
                for b, s in zip(level.buffers, entry["pending"]):
                    b.copy_(s)
                level.received = True

    def check_elastic(self):
        """The one-level mode follows the new ranks; the two-level one cannot."""
        if len(self._levels) > 1:
            raise ValueError("the two-level Leader mode cannot follow an elastic resize (its "
                             "groups are fixed process sets); use a one-level Leader")

    def on_reset(self):
        """An overlapped pull of the old session is dropped unwaited (said in the log); the
        leaders and the step counter come from the first rank at the next step."""
        self.check_elastic()
        for level in self._levels:
            if level.handles is not None:  # a pull received (at a commit) is kept
                log.logger.warning("Horovod was re-initialized with a leader pull still on the "
                                   "wire; it is dropped")
            level.handles = None
            level.ranks = ranks_of(level.process_set)
            if level.leader not in level.ranks:
                level.leader = level.ranks[0]
        super().on_reset()
