"""Mode configurations: small validated dataclasses chosen with ``mode=``.

Only the synchronous mode exists so far. A mode is given as an instance (``hvd_ext.Sync()``) or
by name (``mode="sync"``).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Sync:
    """Synchronous, exact data parallelism: every step applies the average of all ranks' gradients
    of that step, as ``hvd.DistributedOptimizer`` does. Gradients are reduced in buckets launched
    during backward, so communication overlaps the rest of backprop."""

    name = "sync"


MODES = {"sync": Sync}


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
