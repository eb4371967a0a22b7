"""The gradient-averaging modes, Sync and Delayed: every step's gradient is allreduced in buckets
launched during backward (the engine), and the inner step applies the average of step t
(Sync) or of step t - staleness (Delayed)."""
import warnings
from dataclasses import dataclass

import torch
from horovod.torch.compression import Compression
from horovod.torch.mpi_ops import Average

from horovod_ext.engine.gradient_engine import GradientEngine
from horovod_ext.engine.overlap import bucket_step, steps_per_parameter
from horovod_ext.engine.taps import DelayCompensation, NonfiniteCheck, StatisticsTap
from horovod_ext.engine.tuner import OnlineTuner
from horovod_ext.modes.base import Mode, ModeConfig
from horovod_ext.runtime import checks
from horovod_ext.runtime.failure import nonfinite_error


class _GradientConfig(ModeConfig):
    staleness = 0
    compensation = 0.0
    overlap_forward = False

    def check(self, settings, optimizer):
        """``stats`` needs the average of >= 2 ranks' float32/float64 gradients, uncompressed."""
        if settings.stats is None:
            return
        if settings.op != Average:
            raise ValueError("stats needs op=Average: the noise scale compares per-rank gradients "
                             "with their average")
        if settings.compression is not Compression.none:
            raise ValueError("stats needs compression=Compression.none: the squared norm rides "
                             "in the reduced buffer and would be rounded to 16 bits")
        ps = settings.process_set
        if ps.included() and ps.size() < 2:
            raise ValueError(f"stats needs >= 2 ranks to compare per-rank and averaged gradients; "
                             f"this process set has {ps.size()}")
        bad = {p.dtype for g in optimizer.param_groups for p in g["params"]
               if p.dtype not in (torch.float32, torch.float64)}
        if bad:
            raise ValueError(f"stats needs float32 or float64 parameters; got "
                             f"{sorted(map(str, bad))}")

    def build(self, optimizer, inner, settings):
        return GradientMode(self, optimizer, inner, settings)


@dataclass(frozen=True)
class Sync(_GradientConfig):
    """Synchronous, exact data parallelism: every step applies the average of all ranks' gradients
    of that step, as ``hvd.DistributedOptimizer`` does. Gradients are reduced in buckets launched
    during backward, so communication overlaps the rest of backprop.

    ``overlap_forward=True`` (engine/overlap.py): ``step()`` returns without waiting, buckets go
    on the wire in the order the next forward needs them, and each module's forward first
    applies the update of its own parameters, so communication also overlaps the next forward.
    Same result. With the tuner on, it also times the usual schedule and keeps the faster. Needs a per-parameter ``torch.optim`` optimizer, ``nonfinite="ignore"``, no
    ``stats``, and parameters read inside the forward of the modules holding them; parameters
    read directly between ``step()`` and the next forward (not through a module's forward or
    ``state_dict()``) need ``flush()`` first. ``synchronize()``
    before ``step()`` (clipping, AMP) and closures take the usual path.

    Args:
        overlap_forward: overlap communication with the next forward as well (same result).
    """

    overlap_forward: bool = False
    name = "sync"

    def __post_init__(self):
        if not isinstance(self.overlap_forward, bool):
            raise ValueError(f"Sync.overlap_forward must be True or False; got "
                             f"{self.overlap_forward!r}")

    def check(self, settings, optimizer):
        if self.overlap_forward:
            self._check_overlap(settings, optimizer)
        super().check(settings, optimizer)

    def _check_overlap(self, settings, optimizer):
        if not steps_per_parameter(optimizer):
            raise ValueError(f"Sync(overlap_forward=True) steps each bucket's parameters on "
                             f"their own, which equals one full step only for torch.optim's "
                             f"per-parameter optimizers; {type(optimizer).__name__} is not one "
                             f"(use Sync())")
        if settings.nonfinite != "ignore" or settings.stats is not None:
            raise ValueError("Sync(overlap_forward=True) updates each bucket as it arrives; "
                             "nonfinite='skip'/'raise' and stats need every bucket first "
                             "(use Sync())")


@dataclass(frozen=True)
class Delayed(_GradientConfig):
    """Delayed gradient update: the allreduce of step t's gradient starts during its backward and
    is awaited only at step t + staleness, which applies it; the first ``staleness`` steps (and
    the first ``staleness`` after a ``flush()``) take no inner step. Communication overlaps
    ``staleness`` whole forward+backward passes. With ``compensation`` c > 0 the applied
    gradient g is DC-ASGD-compensated: g + c * g * g * (w_now - w_then), w_then being the
    parameters at which g was computed.

    Args:
        staleness: k >= 1, steps between a gradient's exchange starting and its use.
        compensation: c >= 0, the DC-ASGD compensation (0: none).
    """

    staleness: int = 1
    compensation: float = 0.0
    name = "delayed"

    def __post_init__(self):
        checks.positive_int("Delayed.staleness", self.staleness)
        checks.finite_non_negative("Delayed.compensation", self.compensation)


class GradientMode(Mode):
    """Sync and Delayed over one GradientEngine with a ring of ``staleness + 1`` bucket sets."""

    def __init__(self, config, optimizer, inner, settings):
        super().__init__(config, optimizer, inner, settings)
        self._staleness = config.staleness
        params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        self.gradient_stats = settings.stats
        self._nonfinite = NonfiniteCheck(settings.nonfinite, settings.name_of)
        taps = [self._nonfinite]
        if settings.stats is not None:
            settings.stats.attach(settings.process_set.size(), self._staleness)
            taps.insert(0, StatisticsTap(settings.stats))
        if config.compensation > 0:
            taps.append(DelayCompensation(float(config.compensation)))
        if config.overlap_forward:
            self.engine = GradientEngine(params, settings.name_of, settings, 2, taps, lag=0,
                                         step_bucket=bucket_step(optimizer, inner.step))
        else:
            self.engine = GradientEngine(params, settings.name_of, settings,
                                         self._staleness + 1, taps)
        self.engine.follow_session = optimizer._follow_session
        self._apply = None         # the set p.grad shows for the coming inner step, if any
        self.synchronized = False
        self._flushing = False     # inside flush(apply): step() takes the gradient shown
        self._active = settings.process_set.included()
        self.tuner = OnlineTuner(self.engine, settings, refill=self._staleness) \
            if settings.tune and self._active else None

    @property
    def bytes_sent(self):
        return self.engine.bytes_sent

    def buffers(self):
        return self.engine.buffers()

    @property
    def backward_passes_per_step(self):
        return self.engine.backward_passes_per_step

    def synchronize(self):
        """Launches the buckets that did not become ready during backward and queues this step's
        gradients. In sync mode it waits for them; in delayed mode it waits for the gradients of
        ``staleness`` steps ago, if there are any. Afterwards ``p.grad`` holds the averaged
        gradient the inner step will apply."""
        if self._flushing:
            return
        self.engine.finish_deferred()
        self.engine.raise_hook_error()
        if self._active:
            self._apply = self.engine.close_step()
        self.synchronized = True

    def before_step(self, closure, synchronize):
        if self._flushing:
            return not self._skip_bad(), closure, None
        if self.engine.schedule == "forward" and synchronize and not self.synchronized \
                and closure is None and self._active:
            self.engine.finish_deferred()  # parameters the forward did not read
            self.engine.raise_hook_error()
            self.engine.close_step(defer=True)
            return False, closure, None
        if synchronize:
            if self.synchronized:
                warnings.warn("optimizer.step() called without optimizer.skip_synchronize() "
                              "context after optimizer.synchronize(). This can cause training "
                              "slowdown. You may want to consider using "
                              "optimizer.skip_synchronize() context if you use "
                              "optimizer.synchronize() in your code.")
            self.synchronize()
        self.synchronized = False
        apply, self._apply = self._apply, None
        if self._staleness and apply is None:
            return False, closure, None   # warm-up: no gradient to apply yet
        return not self._skip_bad(), closure, None

    def after_step(self, loss):
        if self.tuner is not None and not self.tuner.done:
            self.tuner.after_step()

    def _skip_bad(self):
        """Acts on ``nonfinite`` for the set about to be applied: True to skip its inner step."""
        bad, step = self._nonfinite.take_bad()
        if not bad:
            return False
        if self.settings.nonfinite == "raise":
            raise nonfinite_error(bad, f"in the averaged gradient of step {step}, on every rank")
        self.skipped_steps += 1
        return True

    def flush(self, apply=None):
        """Waits for and applies every gradient still in flight, oldest first, one inner step
        each (or one ``apply(optimizer)`` each: the user's own unscale/clip/step, during which
        ``synchronize()`` is a no-op and ``step()`` takes the gradient shown); ``p.grad`` then
        holds the last one applied. The next ``staleness`` steps refill the pipeline. A no-op in
        sync mode but for ``overlap_forward``'s pending updates."""
        self.engine.check_idle("flush")
        self.engine.finish_deferred()
        for _ in self.engine.apply_pending():
            if apply is None:
                if not self._skip_bad():
                    self.inner.step()
                continue
            self._flushing = True
            try:
                apply(self.optimizer)
            finally:
                self._flushing = False

    def zero_grad(self, set_to_none):
        """Zeroes the bucket set the next backward accumulates into, never one in flight.
        ``p.grad`` stays a view of its bucket even when ``set_to_none=True`` (zeros and None mean
        the same to every torch optimizer step that follows a backward, and keeping the view
        saves a copy per parameter per step)."""
        self.engine.zero_grad()

    def set_backward_passes_per_step(self, passes):
        self.engine.set_backward_passes_per_step(passes)

    def state(self):
        """The bucket plan and the gradients still pending (reduced, not applied yet), so a
        resumed run continues exactly."""
        stats = self.gradient_stats
        self.engine.finish_deferred()
        return dict(self.engine.state_dict(), mode=self.config.name, staleness=self._staleness,
                    stats=None if stats is None else stats.state_dict())

    def before_load(self):
        """Gradients in flight in this process are waited for and replaced."""
        self.engine.drop_deferred()
        self.engine.clear()
        self._nonfinite.take_bad()
        self._apply = None
        self.synchronized = False

    def load_state(self, saved):
        if saved["staleness"] != self._staleness:
            raise ValueError(f"state_dict was saved with staleness {saved['staleness']} but this "
                             f"optimizer has staleness {self._staleness}")
        if self.gradient_stats is not None and saved.get("stats") is not None:
            self.gradient_stats.load_state_dict(saved["stats"])
        self.engine.load_state_dict(saved)

    def on_reset(self):
        """Every rank back to what a new optimizer has but the gradients reduced and not yet
        applied: the construction-time plan (agreed from the first rank after the next step),
        schedule and tuner from its first step, the codec's state from zero (PowerSGD's Q from
        the shared seed, taken from the first rank at the next launch)."""
        self._active = self.settings.process_set.included()
        self.engine.restart()
        self.engine.reset_codec()
        self._nonfinite.take_bad()
        self._apply = None
        self.synchronized = False
        if self.tuner is not None:
            self.tuner.restart()
        if self.gradient_stats is not None:
            self.gradient_stats.ranks = self.settings.process_set.size()
