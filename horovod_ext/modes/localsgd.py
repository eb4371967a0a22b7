"""Local SGD (periodic model averaging)."""
from dataclasses import dataclass

from horovod_ext.modes.averaging import AveragingConfig, AveragingMode
from horovod_ext.runtime import checks


@dataclass(frozen=True)
class LocalSGD(AveragingConfig):
    """Local SGD (periodic model averaging): after step t with (t + 1) % period == 0, every rank
    takes the average of all ranks' parameters.

    Args:
        period: steps between averages.
    """

    period: int
    name = "localsgd"

    def __post_init__(self):
        checks.positive_int("LocalSGD.period", self.period)

    def build(self, optimizer, inner, settings):
        return LocalSGDMode(self, optimizer, inner, settings)


class LocalSGDMode(AveragingMode):
    def __init__(self, config, optimizer, inner, settings):
        super().__init__(config, optimizer, inner, settings)
        self._sums = self._flats.empty()

    def buffers(self):
        return self._sums

    def _average_params(self, why="the round"):
        self.sum_params(self._sums, why)
        self._flats.load_params_from(self._sums, 1.0 / self.process_set.size())

    def after_inner_step(self):
        if self._t % self.config.period == 0:
            self._average_params()

    def consensus_params(self):
        """The average of all ranks' parameters. A collective: call it on every rank."""
        return self.showing(lambda: self._average_params("consensus_params()"))
