"""horovod_ext: a Horovod plug-in for PyTorch. ``import horovod_ext as hvd_ext`` and swap
``hvd.DistributedOptimizer`` for ``hvd_ext.DistributedOptimizer``."""
from horovod_ext import advise, elastic
from horovod_ext.compression import Compression
from horovod_ext.modes import EASGD, Delayed, Leader, LocalSGD, Sync
from horovod_ext.optimizer import DistributedOptimizer
from horovod_ext.stats import GradientStats

__all__ = ["advise", "Compression", "Delayed", "DistributedOptimizer", "EASGD", "elastic",
           "GradientStats", "Leader", "LocalSGD", "Sync"]
__version__ = "0.1.0"
