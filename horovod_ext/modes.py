"""Mode configurations: small validated dataclasses chosen with ``mode=``.

A mode is given as an instance (``hvd_ext.Delayed(staleness=2)``) or by name (``mode="delayed"``,
with the defaults). Every field is checked on construction; a bad one raises ValueError naming it.
"""
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Sync:
    """Synchronous, exact data parallelism: every step applies the average of all ranks' gradients
    of that step, as ``hvd.DistributedOptimizer`` does. Gradients are reduced in buckets launched
    during backward, so communication overlaps the rest of backprop."""

    name = "sync"


@dataclass(frozen=True)
class Delayed:
    """Delayed gradient update: the allreduce of step t's gradient starts during its backward and
    is awaited only at step t + staleness, which applies it; the first ``staleness`` steps (and
    the first ``staleness`` after a ``flush()``) take no inner step. Communication overlaps
    ``staleness`` whole forward+backward passes. With ``compensation`` c > 0 the applied
    gradient g is DC-ASGD-compensated: g + c * g * g * (w_now - w_then), w_then being the
    parameters at which g was computed."""

    staleness: int = 1
    compensation: float = 0.0
    name = "delayed"

    def __post_init__(self):
        if isinstance(self.staleness, bool) or not isinstance(self.staleness, int) \
                or self.staleness < 1:
            raise ValueError(f"Delayed.staleness must be an int >= 1; got {self.staleness!r}")
        c = self.compensation
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c < 0:
            raise ValueError(f"Delayed.compensation must be a finite float >= 0; got {c!r}")


def _int_at_least_1(cls, field, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{cls}.{field} must be an int >= 1; got {value!r}")


def _fraction(cls, field, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{cls}.{field} must be a number in (0, 1]; got {value!r}")


@dataclass(frozen=True)
class Leader:
    """Leader SGD (LSGD): no gradient allreduce; every rank steps on its own gradient. After step t
    with (t + 1) % period == 0, the rank with the lowest mean of its last ``window`` losses
    (default: period; ties go to the lowest rank) broadcasts its parameters and every rank does
    x <- x - pull * (x - x_leader). With ``global_period``/``global_pull`` the period/pull level
    runs inside groups (the ranks of one host, or ``group_size`` consecutive ranks) and the global
    level across all ranks, local round first when both fall on one step. ``overlap=True``
    launches the leader's broadcast asynchronously and applies its pull at the end of the next
    step (with the leader's parameters of the round's step)."""

    period: int
    pull: float
    window: int = None
    global_period: int = None
    global_pull: float = None
    group_size: int = None
    overlap: bool = False
    name = "leader"

    def __post_init__(self):
        _int_at_least_1("Leader", "period", self.period)
        _fraction("Leader", "pull", self.pull)
        if self.window is not None:
            _int_at_least_1("Leader", "window", self.window)
        if (self.global_period is None) != (self.global_pull is None):
            raise ValueError("Leader.global_period and Leader.global_pull must be given together")
        if self.global_period is not None:
            _int_at_least_1("Leader", "global_period", self.global_period)
            _fraction("Leader", "global_pull", self.global_pull)
        if self.group_size is not None:
            _int_at_least_1("Leader", "group_size", self.group_size)
            if self.global_period is None:
                raise ValueError("Leader.group_size needs the two-level mode (global_period, "
                                 "global_pull)")
        if not isinstance(self.overlap, bool):
            raise ValueError(f"Leader.overlap must be a bool; got {self.overlap!r}")


@dataclass(frozen=True)
class EASGD:
    """Elastic averaging SGD: after step t with (t + 1) % period == 0, with S the sum of all
    ranks' parameters and x~ the center (equal on all ranks, starting at rank 0's parameters at
    the first step): x <- x - a (x - x~) and x~ <- x~ + a (S - N x~), both with the old x~.
    moving_rate a defaults to 0.9 / N."""

    period: int
    moving_rate: float = None
    name = "easgd"

    def __post_init__(self):
        _int_at_least_1("EASGD", "period", self.period)
        if self.moving_rate is not None:
            _fraction("EASGD", "moving_rate", self.moving_rate)


@dataclass(frozen=True)
class LocalSGD:
    """Local SGD (periodic model averaging): after step t with (t + 1) % period == 0, every rank
    takes the average of all ranks' parameters."""

    period: int
    name = "localsgd"

    def __post_init__(self):
        _int_at_least_1("LocalSGD", "period", self.period)


MODES = {"sync": Sync, "delayed": Delayed, "leader": Leader, "easgd": EASGD, "localsgd": LocalSGD}
GRADIENT_MODES = (Sync, Delayed)  # modes that allreduce gradients; the others average models


def resolve_mode(mode):
    """Returns the mode config for ``mode`` (an instance or a name); raises ValueError otherwise."""
    if isinstance(mode, tuple(MODES.values())):
        return mode
    if isinstance(mode, str):
        cls = MODES.get(mode.lower())
        if cls is None:
            raise ValueError(f"mode={mode!r} is not a known mode; valid modes: "
                             f"{', '.join(sorted(MODES))}")
        try:
            return cls()
        except TypeError:
            raise ValueError(f"mode={mode!r} has required fields: pass an instance such as "
                             f"horovod_ext.{cls.__name__}(period=...)") from None
    raise ValueError(f"mode must be a mode name ({', '.join(sorted(MODES))}) or a mode instance "
                     f"such as horovod_ext.Sync(); got {type(mode).__name__}")
