"""``DiLoCo(period="auto")``: the period chosen for the link and the compute, as training starts.

For the first ``PROBE_PERIOD`` steps DiLoCo runs blocking rounds at that period and times two
things on every rank: an inner step (the time between two ``step()`` calls without a round) and
a fragment's round (its exchange through the codec, waited for, and the outer step). Then every
rank averages both over the ranks (one allreduce), and each picks the same period: the smallest
of ``CANDIDATES`` whose round is hidden behind its overlap's inner steps (round <= overlap x
step), the overlap being ``overlap_for(period, fragments)``; the largest when none hides it
(AdaComm, Wang and Joshi 2019, chose the period as training goes; this choice is made once, for
the link). The choice is logged, saved in ``state_dict()`` and kept through an elastic resize.
"""
import statistics
import time

import horovod.torch as hvd
import torch

from horovod_ext.runtime import log

PROBE_PERIOD = 8
CANDIDATES = (8, 16, 32, 64, 128, 256)


def overlap_for(period, fragments):
    """The overlap of an automatic period: half the steps between a fragment's rounds."""
    return period // (2 * fragments)


def choose(round_s, step_s, fragments):
    """(period, overlap): the smallest candidate whose round of ``round_s`` seconds is hidden
    behind its overlap of ``step_s``-second inner steps, else the largest."""
    usable = [h for h in CANDIDATES if overlap_for(h, fragments) >= 1]
    for h in usable:
        if round_s <= overlap_for(h, fragments) * step_s:
            return h, overlap_for(h, fragments)
    return usable[-1], overlap_for(usable[-1], fragments)


class PeriodProbe:
    """The timings of the probe's inner steps and rounds on this rank."""

    def __init__(self):
        self.steps, self.rounds = [], []
        self._since = None      # when the last step's rounds ended

    def timed_step(self, rounds_due, t, fragments, process_set, meet):
        """Runs ``rounds_due()`` (the step's blocking rounds; it returns how many), timing it
        and the inner step before it; (period, overlap) once the probe is over, else None."""
        start = time.perf_counter()
        if self._since is not None:
            self.steps.append(start - self._since)
        launched = rounds_due()
        self._since = time.perf_counter()
        if launched:
            self.rounds.append((self._since - start) / launched)
        if t >= PROBE_PERIOD and self.rounds and len(self.steps) > 1:
            return self.decide(fragments, process_set, meet)
        return None

    def decide(self, fragments, process_set, meet):
        """(period, overlap), the same on every rank: the timings averaged over the ranks."""
        step = statistics.median(self.steps[1:] or self.steps)  # the first step warms up
        mine = torch.tensor([statistics.mean(self.rounds), step], dtype=torch.float64)
        meet("the automatic period's timings")
        round_s, step_s = hvd.allreduce(mine, op=hvd.Average, process_set=process_set,
                                        name="hvd_ext.diloco.auto").tolist()
        period, overlap = choose(round_s, step_s, fragments)
        log.logger.info("DiLoCo(period='auto'): a round takes %.3f ms and an inner step %.3f ms "
                        "(mean over %d ranks); period %d with overlap %d", round_s * 1e3,
                        step_s * 1e3, process_set.size(), period, overlap)
        return period, overlap
