"""horovod_ext: a Horovod plug-in for PyTorch. ``import horovod_ext as hvd_ext`` and swap
``hvd.DistributedOptimizer`` for ``hvd_ext.DistributedOptimizer``."""
import importlib

try:
    import horovod.torch  # noqa: F401
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError(
        "horovod_ext needs Horovod with PyTorch support, built against the torch installed here "
        f"({e}): run scripts/install_horovod.sh from the horovod_ext sources, or "
        "HOROVOD_WITH_PYTORCH=1 pip install --no-build-isolation horovod") from e

from horovod_ext._version import __version__  # noqa: E402
from horovod_ext import elastic
from horovod_ext.codecs import PowerSGD, Quantize
from horovod_ext.compression import Compression
from horovod_ext.modes import EASGD, Delayed, DiLoCo, Leader, LocalSGD, Sync
from horovod_ext.optimizer import DistributedOptimizer
from horovod_ext.probing import probe
from horovod_ext.stats import GradientStats

__all__ = ["advise", "Compression", "Delayed", "DiLoCo", "DistributedOptimizer", "EASGD", "elastic",
           "GradientStats", "Leader", "LocalSGD", "PowerSGD", "probe", "Quantize", "Sync", "__version__"]


def __getattr__(name):
    # ``hvd_ext.advise`` is imported on first use, so that ``python -m horovod_ext.advise`` runs
    # a module that is not already imported (runpy warns otherwise).
    if name == "advise":
        return importlib.import_module("horovod_ext.advise")
    raise AttributeError(f"module 'horovod_ext' has no attribute {name!r}")
