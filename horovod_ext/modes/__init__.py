"""The modes, chosen with ``mode=``: one module each (sync and delayed share ``gradient.py``),
each owning its configuration dataclass and the mode object that configuration builds.

A mode is given as an instance (``hvd_ext.Delayed(staleness=2)``) or by name (``mode="delayed"``,
with the defaults). Every field is checked on construction; a bad one raises ValueError naming it.
"""
from horovod_ext.modes.base import Mode, ModeConfig
from horovod_ext.modes.diloco import DiLoCo
from horovod_ext.modes.easgd import EASGD
from horovod_ext.modes.gradient import Delayed, Sync
from horovod_ext.modes.leader import Leader
from horovod_ext.modes.localsgd import LocalSGD

MODES = {cls.name: cls for cls in (Sync, Delayed, Leader, EASGD, LocalSGD, DiLoCo)}


def resolve_mode(mode):
    """Returns the mode config for ``mode`` (an instance or a name); raises ValueError otherwise."""
    if isinstance(mode, ModeConfig):
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


__all__ = ["Delayed", "DiLoCo", "EASGD", "Leader", "LocalSGD", "MODES", "Mode", "ModeConfig",
           "resolve_mode", "Sync"]
