"""What the model-averaging modes (Leader, EASGD, local SGD, DiLoCo) share: no gradient is
allreduced; every rank's inner step uses its own gradient, and every ``period`` steps a round
pulls the ranks' parameters together. Parameters travel as one flat buffer per (dtype, device) (``ParamFlats``):
the pack kernel fills it, one collective moves it, a fused kernel applies it."""
from collections import deque
from contextlib import contextmanager

import horovod.torch as hvd
import torch
from horovod.torch.compression import Compression
from horovod.torch.functions import broadcast_object
from horovod.torch.mpi_ops import Average

from horovod_ext.modes.base import Mode, ModeConfig
from horovod_ext.modes.flats import ParamFlats
from horovod_ext.runtime.failure import nonfinite_error, nonfinite_names, stop_all_ranks
from horovod_ext.runtime.same_point import Point, same_point
from horovod_ext.runtime.wire import wire_bytes


class AveragingConfig(ModeConfig):
    """Refuses the arguments that only a gradient allreduce has (``compression`` too, unless the
    mode compresses what its rounds send: ``compresses_rounds``)."""

    compresses_rounds = False

    def check(self, settings, optimizer):
        if settings.stats is not None:
            raise ValueError(f"stats needs a gradient-averaging mode (sync, delayed): mode "
                             f"{type(self).__name__} averages parameters, not gradients")
        defaults = dict(backward_passes_per_step=(settings.backward_passes_per_step, 1),
                        op=(settings.op, Average),
                        gradient_predivide_factor=(settings.gradient_predivide_factor, 1.0),
                        groups=(settings.groups, None))
        if not self.compresses_rounds:
            defaults["compression"] = (settings.compression, Compression.none)
        for arg, (value, default) in defaults.items():
            if value != default:
                raise ValueError(f"{arg} applies to the gradient allreduce, and mode "
                                 f"{type(self).__name__} has none; leave it at its default")


class AveragingMode(Mode):
    """Subclasses implement ``after_inner_step()`` (the rounds) and may extend the state."""

    def __init__(self, config, optimizer, inner, settings, loss_window=1):
        super().__init__(config, optimizer, inner, settings)
        self.process_set = settings.process_set
        self._params = [p for g in optimizer.param_groups for p in g["params"]]
        self._name_of = settings.name_of
        self._flats = ParamFlats(self._params)
        self._t = 0                  # steps taken
        self._sent = 0.0
        self._losses = deque(maxlen=loss_window)  # (loss, missing) of the last steps
        self._agreed = False         # see adopt_first_rank_state()

    @property
    def bytes_sent(self):
        return self._sent

    def count(self, kind, tensor, process_set):
        """Adds one collective of ``tensor`` over ``process_set`` to ``bytes_sent``."""
        self._sent += wire_bytes(kind, tensor.numel() * tensor.element_size(), process_set.size())

    def adopt_first_rank_state(self):
        """NOTE: [rank-0 resume] Horovod's resume recipe loads the checkpoint on rank 0 alone,
        then ``hvd.broadcast_optimizer_state`` sends the wrapped optimizer's state, which does
        not hold this mode's: the other ranks would count steps from 0 and run their rounds at
        other steps than rank 0 (a hang, or parameters averaged across different steps). So at
        the first step after construction or a load, every rank takes the first rank's step
        counter and the mode's shared state (outer parameters and momentum, center, leaders):
        one broadcast, not counted in ``bytes_sent`` (like ``broadcast_parameters``). Each
        rank keeps its ``own_state()`` (recent losses, a codec's error feedback)."""
        if self._agreed:
            return
        self.meet("the state from the first rank, at the first step since construction, a load "
                  "or a resize")
        root = ranks_of(self.process_set)[0]
        shared = broadcast_object(self.state() if hvd.rank() == root else None, root_rank=root,
                                  name=f"hvd_ext.{self.config.name}.agree",
                                  process_set=self.process_set)
        shared.update(self.own_state())
        self.load_state(shared)
        self._agreed = True

    def meet(self, what):
        """Before each collective of the mode: every rank at the same point (same_point.py),
        without a bound: the averaging modes issue no collective but after one."""
        same_point(f"{what} (mode {self.config.name})", self.process_set, bounded=False)

    def start_point(self, what):
        """``meet`` started beside the round's exchange and finished before its result is used
        (NOTE: [one round, one cycle])."""
        return Point(f"{what} (mode {self.config.name})", self.process_set)

    def on_reset(self):
        """The next step takes the first rank's step counter and shared state again (a rank
        that joined has no other), as after a load."""
        self._agreed = False

    def own_state(self):
        """The part of ``state()`` each rank keeps for itself when it adopts the first rank's."""
        return {"losses": list(self._losses)}

    def prepare(self):
        """Before each step, after adopting the first rank's state: state a mode starts lazily (theta, center)."""

    def before_step(self, closure, synchronize):
        """The closure (when given and ``nonfinite`` checks) runs first: its gradient is the one
        to check. Each rank checks its own gradient; a skip needs no agreement (the averaging
        rounds still run)."""
        self.adopt_first_rank_state()
        self.prepare()
        result = None
        if closure is not None and self.settings.nonfinite != "ignore":
            with torch.enable_grad():
                result = closure()
            closure = None
        return not self._bad_gradient(), closure, result

    def _bad_gradient(self):
        if self.settings.nonfinite == "ignore":
            return False
        bad = nonfinite_names(
            [([p.grad for p in ps if p.grad is not None],
              [self._name_of[p] for p in ps if p.grad is not None])
             for ps, _, _ in self._flats.groups])
        if bad and self.settings.nonfinite == "raise":  # the others would wait at the next round
            stop_all_ranks(nonfinite_error(bad, f"on rank {hvd.rank()} at step {self._t}"))
        self.skipped_steps += bool(bad)
        return bool(bad)

    def after_step(self, loss):
        if isinstance(loss, torch.Tensor):
            loss = loss.detach().item()
        self._losses.append((0.0, True) if loss is None else (float(loss), False))
        self._t += 1
        self.after_inner_step()

    def after_inner_step(self):
        raise NotImplementedError

    def sum_params(self, sums, why):
        """sums <- the sum over ranks of the parameters (one allreduce per flat buffer);
        ``why`` names the point (same_point.py)."""
        self._flats.copy_params_to(sums)
        point = self.start_point(f"the sum of the parameters for {why} after step {self._t}")
        handles = [hvd.allreduce_async_(s, name=f"hvd_ext.{self.config.name}.sum.{i}",
                                        op=hvd.Sum, process_set=self.process_set)
                   for i, s in enumerate(sums)]
        point.finish()
        for s, handle in zip(sums, handles):
            hvd.synchronize(handle)
            self.count("allreduce", s, self.process_set)

    @contextmanager
    def showing(self, load):
        """``consensus_params()`` of the averaging modes: ``load()`` puts the model to evaluate
        into the parameters for the block; every rank's own parameters come back after it."""
        own = self._flats.empty()
        self._flats.copy_params_to(own)
        load()
        try:
            yield
        finally:
            self._flats.load_params_from(own)

    def state(self):
        """Step counter and recent losses; subclasses add theirs."""
        return {"mode": self.config.name, "t": self._t, "losses": list(self._losses)}

    def load_state(self, saved):
        if saved["mode"] != self.config.name:
            raise ValueError(f"state_dict was saved in mode {saved['mode']!r}, this optimizer "
                             f"runs mode {self.config.name!r}")
        self._t = saved["t"]
        self._agreed = False
        self._losses.clear()
        self._losses.extend(tuple(x) for x in saved["losses"])


def ranks_of(process_set):
    return list(range(hvd.size())) if process_set.ranks is None else list(process_set.ranks)
