"""horovod_ext: a Horovod plug-in for PyTorch. ``import horovod_ext as hvd_ext`` and swap
``hvd.DistributedOptimizer`` for ``hvd_ext.DistributedOptimizer``."""
import importlib

from horovod_ext import elastic
from horovod_ext.codecs import PowerSGD, Quantize
from horovod_ext.compression import Compression
from horovod_ext.modes import EASGD, Delayed, DiLoCo, Leader, LocalSGD, Sync
from horovod_ext.optimizer import DistributedOptimizer
from horovod_ext.stats import GradientStats

__all__ = ["advise", "Compression", "Delayed", "DiLoCo", "DistributedOptimizer", "EASGD", "elastic",
           "GradientStats", "Leader", "LocalSGD", "PowerSGD", "Quantize", "Sync"]
__version__ = "0.1.0"


def __getattr__(name):
    # ``hvd_ext.advise`` is imported on first use, so that ``python -m horovod_ext.advise`` runs
    # a module that is not already imported (runpy warns otherwise).
    if name == "advise":
        return importlib.import_module("horovod_ext.advise")
    raise AttributeError(f"module 'horovod_ext' has no attribute {name!r}")
