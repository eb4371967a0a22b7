"""The optimizer front: ``horovod_ext.DistributedOptimizer``, a drop-in for
``hvd.DistributedOptimizer``. It validates the arguments, runs the same-setup check, builds the
user-facing subclass and delegates every call to the mode object its ``mode=`` builds
(``horovod_ext.modes``); how gradients travel is the engine's business (``horovod_ext.engine``).
"""
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Optional, Sequence, Tuple, Union

import horovod.torch as hvd
import horovod.torch.optimizer as horovod_optimizer
import torch
from horovod.torch.mpi_ops import Adasum, Average, global_process_set

from horovod_ext.codecs import codec_for
from horovod_ext.compression import Compression
from horovod_ext.modes import resolve_mode
from horovod_ext.modes.base import ModeConfig, Settings
from horovod_ext.runtime import checks, log
from horovod_ext.runtime.failure import check_nonfinite
from horovod_ext.runtime.names import parameter_names
from horovod_ext.runtime.same_setup import check_same_setup, described, same_setup_at_construction
from horovod_ext.runtime.session import SessionWatch
from horovod_ext.stats import GradientStats


class _DistributedOptimizer(torch.optim.Optimizer):
    """The methods of every optimizer ``DistributedOptimizer`` returns (see NOTE: [class])."""

    def __init__(self, params, config, settings, setup):
        super(self.__class__, self).__init__(params)
        self.mode = config
        self.nonfinite = settings.nonfinite
        self.process_set = settings.process_set
        self.op = settings.op
        self.gradient_predivide_factor = settings.gradient_predivide_factor
        self._compression = settings.compression
        self.sparse_as_dense = settings.sparse_as_dense
        # Horovod's: parameter -> name, ordered by name (user code and Horovod's helpers read it).
        self._parameter_names = dict(sorted(settings.name_of.items(), key=lambda item: item[1]))
        self._requires_update = {p for p in settings.name_of if p.requires_grad}  # Horovod's
        self._groups = settings.groups
        self._setup = setup                # check_same_setup()'s arguments
        self._should_synchronize = True    # False inside skip_synchronize()
        self._session = SessionWatch()     # the Horovod session the mode's state belongs to
        # The wrapped optimizer's own methods, bound to this object, for the mode to call.
        inner = super(self.__class__, self)
        log.debug("DistributedOptimizer(%s): mode %r, compression %r, op %s, "
                  "backward_passes_per_step %d, bucket_cap_mb %s, first_bucket_mb %s, %d ranks, "
                  "%d parameters", type(self).__name__, config, settings.codec,
                  log.op_name(settings.op),
                  settings.backward_passes_per_step, settings.bucket_cap_mb,
                  settings.first_bucket_mb, settings.process_set.size(), len(settings.name_of))
        self._mode_object = config.build(self, inner, settings)

    def step(self, closure: Optional[Callable[[], Any]] = None, loss: Any = None) -> Any:
        """Waits for what this step applies (a no-op in the averaging modes), then runs the
        wrapped optimizer's step, then the mode's round when one is due. In delayed mode the
        first ``staleness`` steps have no gradient to apply yet and return None. ``loss`` is
        accepted for every mode and used only by leader-based ones (or the closure's result)."""
        self._follow_session()
        mode = self._mode_object
        take, closure, result = mode.before_step(closure, self._should_synchronize)
        if take:
            inner = super(self.__class__, self).step(closure)
            result = inner if result is None else result
        mode.after_step(result if loss is None else loss)
        return result

    def synchronize(self):
        """Launches the buckets that did not become ready during backward and waits until
        ``p.grad`` holds the averaged gradient the step applies (nothing in the averaging modes)."""
        self._follow_session()
        self._mode_object.synchronize()

    @contextmanager
    def skip_synchronize(self):
        """``optimizer.synchronize(); <clip>; with optimizer.skip_synchronize(): optimizer.step()``"""
        self._should_synchronize = False
        try:
            yield
        finally:
            self._should_synchronize = True

    def flush(self, apply: Optional[Callable[[torch.optim.Optimizer], Any]] = None) -> None:
        """Applies whatever is still in flight (delayed gradients, one inner step each, oldest
        first; an overlapped leader pull) and leaves nothing in flight. ``apply(optimizer)``,
        if given, runs instead of the inner step for each delayed gradient, with ``p.grad``
        showing it: what the training loop does after ``synchronize()`` (AMP's
        ``scaler.unscale_``, clipping, ``scaler.step(optimizer)``, ``scaler.update()``); inside
        it ``synchronize()`` does nothing and ``step()`` applies the gradient shown."""
        self._follow_session()
        self._mode_object.flush(apply)

    def consensus_params(self):
        """Context manager that loads the model to evaluate: the current parameters after
        ``flush()`` (sync, delayed), the leader's (leader), the center (EASGD), the average
        (local SGD); the averaging modes restore each rank's own parameters afterwards. A
        collective for leader and local SGD: call it on every rank."""
        self._follow_session()
        return self._mode_object.consensus_params()

    def zero_grad(self, set_to_none=True):
        self._follow_session()
        self._mode_object.zero_grad(set_to_none)

    def set_backward_passes_per_step(self, passes):
        checks.positive_int("backward_passes_per_step", passes)
        self._mode_object.set_backward_passes_per_step(passes)

    @property
    def backward_passes_per_step(self):
        return self._mode_object.backward_passes_per_step

    @backward_passes_per_step.setter
    def backward_passes_per_step(self, passes):
        self.set_backward_passes_per_step(passes)

    def state_dict(self):
        """The wrapped optimizer's state plus, under ``"hvd_ext"``, the mode's (pending
        gradients, plan, counters, leaders, center), so a resumed run continues exactly."""
        self._follow_session()
        return self._mode_object.state_dict()

    def load_state_dict(self, state_dict):
        """Restores the wrapped optimizer's state and, when present, the mode's. Whatever is in
        flight in this process is waited for and replaced."""
        self._follow_session()
        self._mode_object.load_state_dict(state_dict)

    def check_same_setup(self):
        """Runs the construction-time same-setup check again, across the ranks there are now."""
        check_same_setup(*self._setup)

    def reset_after_resize(self):
        """After Horovod elastic re-forms the job: the mode follows the new ranks and size (or
        raises when it cannot). Every entry point of the optimizer does this by itself when it
        finds that Horovod was re-initialized (horovod_ext/runtime/session.py); calling it is needed
        only where a re-initialization keeps Horovod's session token (see there)."""
        self._session.follow()
        self._mode_object.on_reset()

    def _follow_session(self):
        """The mode's reset, once, when Horovod was re-initialized since its last entry."""
        if self._session.changed():
            log.info("Horovod was re-initialized (%d ranks now): the optimizer starts over "
                     "from a new optimizer's plan, tuner and codec state", hvd.size())
            self._mode_object.on_reset()

    @property
    def _synchronized(self):
        """Horovod's: ``synchronize()`` ran since the last ``step()``."""
        return self._mode_object.synchronized

    @property
    def bytes_sent(self) -> float:
        """Bytes this rank sent for every collective it launched (see ``horovod_ext.runtime.wire``)."""
        return self._mode_object.bytes_sent

    @property
    def buffer_bytes(self):
        """Bytes of every buffer the mode keeps between steps (buckets, snapshots, centers)."""
        return sum(t.numel() * t.element_size() for t in self._mode_object.buffers())

    @property
    def skipped_steps(self):
        """Inner steps skipped for a non-finite gradient (``nonfinite='skip'``)."""
        return self._mode_object.skipped_steps

    @property
    def gradient_stats(self):
        """The ``GradientStats`` given as ``stats=``, or None."""
        return self._mode_object.gradient_stats

    @property
    def tuned(self) -> Optional[dict]:
        """The online tuner's record (sync and delayed modes with ``tune=True``, else None):
        ``done``, ``steps`` and ``seconds`` it took (``budget``: the most it can take), the
        ``chosen`` settings once done, and
        every setting ``tried`` with its step time in ms, averaged over ranks."""
        tuner = getattr(self._mode_object, "tuner", None)
        return None if tuner is None else tuner.report()

    @property
    def leader_history(self):
        """Leader mode: the leaders elected so far, per level (local first)."""
        return self._mode_object.leader_history


def is_distributed_optimizer(obj):
    """Whether ``obj`` was returned by ``horovod_ext.DistributedOptimizer``."""
    return type(obj).__dict__.get("reset_after_resize") is _DistributedOptimizer.reset_after_resize


def DistributedOptimizer(
        optimizer: torch.optim.Optimizer,
        named_parameters: Optional[Iterable[Tuple[str, torch.Tensor]]] = None,
        compression: Any = Compression.none, backward_passes_per_step: int = 1, op: int = Average,
        gradient_predivide_factor: float = 1.0, num_groups: int = 0,
        groups: Optional[Union[int, Sequence[Sequence[torch.Tensor]]]] = None,
        sparse_as_dense: bool = False, process_set: Any = global_process_set, *,
        mode: Union[str, ModeConfig] = "sync", bucket_cap_mb: Optional[float] = None,
        first_bucket_mb: Optional[float] = None, stats: Optional[GradientStats] = None,
        nonfinite: str = "ignore", tune: bool = True) -> torch.optim.Optimizer:
    """Wraps ``optimizer`` like ``hvd.DistributedOptimizer`` (same arguments, same meaning) and
    returns an instance of a subclass of its class.

    Gradients are gathered in flat buckets in backward order; each bucket's allreduce starts the
    moment its last gradient is accumulated, so communication overlaps the rest of backprop.
    ``bucket_cap_mb`` caps a bucket's size (default None: about 32 buckets for the model, each
    0.25 to 25 MB) and the first bucket holds at most ``first_bucket_mb`` (default None: 1 MB).
    ``tune=True`` (sync and delayed modes): the first steps of training (at most 30, see
    ``horovod_ext.engine.search_space``) time other bucket sizes and, where Horovod allows,
    its fusion threshold and cycle time on every rank, and keep the fastest (``optimizer.tuned``
    says what); only the schedule changes, never the result. Settings given explicitly (``bucket_cap_mb``, ``first_bucket_mb``,
    ``groups``, ``HOROVOD_FUSION_THRESHOLD``, ``HOROVOD_CYCLE_TIME``, ``HOROVOD_AUTOTUNE``) are
    not tuned; ``tune=False`` tunes nothing. ``stats=GradientStats(batch_size)`` measures the
    gradient noise scale with no extra collective; it is then ``optimizer.gradient_stats``.
    ``nonfinite``: what a NaN or inf in the gradient to apply does: ``"ignore"`` (apply it, as
    Horovod does), ``"skip"`` (skip that inner step on every rank, counted in
    ``optimizer.skipped_steps``) or ``"raise"`` (FloatingPointError naming the parameter). In
    the gradient modes it is decided from the averaged gradient, so every rank agrees.

    Every rank must pass the same parameters (names, shapes, dtypes, order) and arguments: one
    small allgather checks it first, and a difference raises ValueError on every rank.

    Args:
        optimizer: the torch optimizer to wrap; its ``step()`` is the inner step.
        named_parameters: (name, parameter) pairs, as Horovod's.
        compression: ``Compression.none`` (exact), ``Compression.fp16``, another Horovod
            ``Compressor``, or a codec: ``PowerSGD``, ``Quantize``, ``TopK``.
        backward_passes_per_step, op, gradient_predivide_factor, sparse_as_dense,
            process_set: as Horovod's.
        num_groups, groups: Horovod's explicit grouping (one bucket per group).
        mode: ``"sync"`` or ``Sync()`` (exact), ``Delayed``, ``Leader``, ``EASGD``,
            ``LocalSGD``, ``DiLoCo``.
        bucket_cap_mb, first_bucket_mb: bucket sizes in MB (None: chosen, then tuned).
        stats: a ``GradientStats`` to measure the gradient noise scale on the way.
        nonfinite: ``"ignore"``, ``"skip"`` or ``"raise"`` for a NaN or inf gradient.
        tune: let the first steps choose the buckets (and Horovod's knobs) by timing them.

    Returns:
        The optimizer, an instance of a subclass of its class.
    """
    if named_parameters is not None:
        named_parameters = list(named_parameters)
    setup = same_setup_at_construction(optimizer, named_parameters, process_set, dict(
        mode=described(mode), optimizer=type(optimizer).__name__,
        compression=described(compression),
        backward_passes_per_step=repr(backward_passes_per_step), op=repr(op),
        gradient_predivide_factor=repr(gradient_predivide_factor), num_groups=repr(num_groups),
        groups=repr(groups if not isinstance(groups, list) else [len(g) for g in groups]),
        sparse_as_dense=repr(sparse_as_dense), bucket_cap_mb=repr(bucket_cap_mb),
        first_bucket_mb=repr(first_bucket_mb), nonfinite=repr(nonfinite), tune=repr(tune),
        stats=repr(stats if not isinstance(stats, GradientStats)
                   else (stats.batch_size, stats.ema, stats.every))))
    config = resolve_mode(mode)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}")
    checks.positive_int("backward_passes_per_step", backward_passes_per_step)
    checks.positive_number("gradient_predivide_factor", gradient_predivide_factor)
    if bucket_cap_mb is not None:
        checks.positive_number("bucket_cap_mb", bucket_cap_mb)
    if first_bucket_mb is not None:
        checks.positive_number("first_bucket_mb", first_bucket_mb)
    if not isinstance(tune, bool):
        raise ValueError(f"tune must be True or False; got {tune!r}")
    check_nonfinite(nonfinite)
    if op == Adasum:
        raise ValueError("op=Adasum is not supported by horovod_ext.DistributedOptimizer (Adasum "
                         "combines per tensor, not per bucket); use hvd.DistributedOptimizer")
    if gradient_predivide_factor != 1.0 and op != Average:
        raise ValueError("gradient_predivide_factor not supported with op != Average")
    codec = codec_for(compression)
    groups = checks.groups_argument(num_groups, groups)
    if stats is not None and not isinstance(stats, GradientStats):
        raise ValueError(f"stats must be a horovod_ext.GradientStats; got {type(stats).__name__}")
    settings = Settings(
        name_of=parameter_names(optimizer.param_groups, named_parameters),
        compression=compression, codec=codec, backward_passes_per_step=backward_passes_per_step,
        op=op,
        gradient_predivide_factor=gradient_predivide_factor, groups=groups,
        sparse_as_dense=sparse_as_dense,
        process_set=process_set, bucket_cap_mb=bucket_cap_mb, first_bucket_mb=first_bucket_mb,
        stats=stats, nonfinite=nonfinite, tune=tune)
    config.check(settings, optimizer)
    codec.check(settings)
    # NOTE: [class] Horovod's trick: the optimizer returned is an instance of a new subclass of
    # the user's optimizer class holding our methods, so isinstance() checks, the inner step
    # (``super(self.__class__, self).step``) and the optimizer's state keep working.
    # Horovod's broadcast_optimizer_state() recognises a distributed optimizer by its class's
    # __module__ and then initialises the optimizer state with the wrapped optimizer's own
    # step() on zero gradients, without communication. We want exactly that for every mode (a
    # delayed mode would otherwise queue those zeros as a real gradient), so the class reports
    # Horovod's module, read from that module itself: after the one-line swap
    # ``hvd.DistributedOptimizer = hvd_ext.DistributedOptimizer`` the name in ``horovod.torch``
    # is ours, and a module read from it would make every rank that loaded no checkpoint run a
    # real step() with an allreduce the others never join.
    cls = type(optimizer.__class__.__name__, (optimizer.__class__,),
               dict(_DistributedOptimizer.__dict__, __module__=horovod_optimizer.__name__))
    return cls(optimizer.param_groups, config, settings, setup)
