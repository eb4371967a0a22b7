"""Elastic averaging SGD: every rank is pulled toward a center, and the center toward the ranks."""
from dataclasses import dataclass
from typing import Optional

import horovod.torch as hvd

from horovod_ext.modes.averaging import AveragingConfig, AveragingMode, ranks_of
from horovod_ext.runtime import checks


@dataclass(frozen=True)
class EASGD(AveragingConfig):
    """Elastic averaging SGD: after step t with (t + 1) % period == 0, with S the sum of all
    ranks' parameters and x~ the center (equal on all ranks, starting at rank 0's parameters at
    the first step): x <- x - a (x - x~) and x~ <- x~ + a (S - N x~), both with the old x~.
    moving_rate a defaults to 0.9 / N.

    Args:
        period: steps between rounds.
        moving_rate: a in (0, 1] (None: 0.9 / N).
    """

    period: int
    moving_rate: Optional[float] = None
    name = "easgd"

    def __post_init__(self):
        checks.positive_int("EASGD.period", self.period)
        if self.moving_rate is not None:
            checks.fraction("EASGD.moving_rate", self.moving_rate)

    def build(self, optimizer, inner, settings):
        return EASGDMode(self, optimizer, inner, settings)


class EASGDMode(AveragingMode):
    def __init__(self, config, optimizer, inner, settings):
        super().__init__(config, optimizer, inner, settings)
        self._center = None          # flat buffers equal on all ranks, from the first step on
        self._sums = self._flats.empty()
        self._alpha = config.moving_rate or 0.9 / self.process_set.size()

    def buffers(self):
        return (self._center or []) + self._sums

    def prepare(self):
        if self._center is None:  # not loaded here nor agreed from the first rank
            self._init_center()

    def _init_center(self):
        self._center = self._flats.empty()
        self._flats.copy_params_to(self._center)
        self.meet("the center from the first rank")
        root = ranks_of(self.process_set)[0]
        for i, c in enumerate(self._center):
            hvd.broadcast_(c, root_rank=root, name=f"hvd_ext.easgd.center.{i}",
                           process_set=self.process_set)
            self.count("broadcast", c, self.process_set)

    def after_inner_step(self):
        if self._t % self.config.period == 0:
            self.sum_params(self._sums, "the round")
            self._flats.easgd_update(self._center, self._sums, self._alpha,
                                     float(self.process_set.size()))

    def consensus_params(self):
        """The center (the parameters themselves before the first step)."""
        return self.showing(self._load_center)

    def _load_center(self):
        if self._center is not None:
            self._flats.load_params_from(self._center)

    def state(self):
        center = None if self._center is None else [c.clone() for c in self._center]
        return dict(super().state(), center=center)

    def load_state(self, saved):
        super().load_state(saved)
        if saved.get("center") is not None:
            self._center = [c.clone() for c in saved["center"]]

    def on_reset(self):
        super().on_reset()
        if self.config.moving_rate is None:
            self._alpha = 0.9 / self.process_set.size()
