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


MODES = {"sync": Sync, "delayed": Delayed}


def resolve_mode(mode):
    """Returns the mode config for ``mode`` (an instance or a name); raises ValueError otherwise."""
    if isinstance(mode, tuple(MODES.values())):
        return mode
    if isinstance(mode, str):
        try:
            return MODES[mode.lower()]()
        except KeyError:
            raise ValueError(f"mode={mode!r} is not a known mode; valid modes: "
                             f"{', '.join(sorted(MODES))}") from None
    raise ValueError(f"mode must be a mode name ({', '.join(sorted(MODES))}) or a mode instance "
                     f"such as horovod_ext.Sync(); got {type(mode).__name__}")
