"""The online tuner of the gradient modes: times the first steps of training under the settings
``horovod_ext.engine.search_space`` proposes, averaged over ranks, and keeps the fastest. Only scheduling
changes (when updates are applied, bucket plan, Horovod's fusion threshold and cycle time), never
what is summed, so every step's result is the same as untuned.

Every rank calls ``after_step()`` once per ``step()``, so every rank switches at the same step;
the per-candidate time is averaged over ranks by a blocking allreduce, which is also the fence
Horovod's setter needs (horovod_knobs.py): every collective launched before it has completed.
"""
import statistics
import time
import weakref

import horovod.torch as hvd
import torch

from horovod_ext.engine.search_space import MB, PLAN, SETTLING, TIMED, WARMUP, Search, SearchSpace
from horovod_ext.runtime import horovod_knobs, log
from horovod_ext.runtime.same_point import same_point

_knob_owner = None  # weakref to the tuner now tuning Horovod's knobs (one at a time per process)


def _claim_knobs(tuner):
    """Horovod's knobs are global to the process: one tuner at a time tunes them, from its start
    until it is done (then another may; its choice then stays until that one's)."""
    global _knob_owner
    owner = None if _knob_owner is None else _knob_owner()
    if owner is None or owner is tuner or owner.done:
        _knob_owner = weakref.ref(tuner)
        return True
    return False


class OnlineTuner:
    """``engine``: the GradientEngine whose plan and schedule it sets; ``settings``: the
    optimizer's."""

    def __init__(self, engine, settings, refill=0):
        self.engine = engine
        self._refill = refill  # see tuning.SearchSpace
        self.settings = settings
        self._start_caps = (engine.planner.cap, engine.planner.first_cap)
        self._start_schedule = engine.schedule
        self.restarts = -1    # elastic resizes it started over after
        self.restart()

    def restart(self):
        """From the first step again (construction, elastic resize); a no-op when no step was
        taken since the last restart."""
        if self.restarts >= 0 and self.steps == 0:
            return
        self.restarts += 1
        planner, ps = self.engine.planner, self.settings.process_set
        cap, first = self._start_caps
        if self.restarts:  # back to the start after an elastic resize
            horovod_knobs.reinitialized()
            self.engine.set_schedule(self._start_schedule)
            self.engine.replan(cap, first)
        given_cap, given_first = self.settings.bucket_cap_mb, self.settings.first_bucket_mb
        cap_mb = cap / MB if given_cap is None else given_cap  # as given, when given
        start = dict(bucket_cap_mb=cap_mb, first_bucket_mb=first / MB if given_first is None
                     else min(cap_mb, given_first))
        start["schedule"] = self._start_schedule
        tunable = {"schedule"} if len(self.engine.schedules) > 1 else set()
        if self.settings.groups is None:
            tunable |= {"first_bucket_mb"} if given_first is None else set()
            tunable |= {"bucket_cap_mb"} if given_cap is None else set()
        # Horovod's knobs when it can set them for the whole job; whether this tuner may is
        # decided at its first step (_claim_knobs), when the space may shrink.
        self._knobs = ps.size() == hvd.size() and horovod_knobs.has_setter()
        start["fusion_mb"], start["cycle_ms"] = horovod_knobs.started_with()
        if self._knobs:
            tunable |= {"fusion_mb", "cycle_ms"} - horovod_knobs.fixed_by_user()
        self._space = lambda knobs: Search(SearchSpace(start, knobs, sum(
            p.numel() * p.element_size() for p in planner.params) / MB, self._refill))
        self._tunable = tunable
        self.search = self._space(tunable)
        self.applied = dict(start)
        self.done = not self.search.space.knobs
        self.steps = 0        # steps tuning took
        self.seconds = 0.0    # their wall time, from the end of the first
        self._last, self._timed, self._phase_end = None, [], WARMUP
        self._candidate = None

    def after_step(self):
        """Once per ``step()`` on every rank of the process set, while tuning."""
        if self.steps == 0 and self._knobs and not self._agreed(_claim_knobs(self)):
            self._knobs = False  # another optimizer of this process is tuning them now
            self.search = self._space(self._tunable - {"fusion_mb", "cycle_ms"})
            self.done = not self.search.space.knobs
            if self.done:
                return
        now = time.perf_counter()
        dt = None if self._last is None else now - self._last  # this step's wall time
        self.steps += 1
        self._last = now
        if dt is not None:
            self.seconds += dt
            if self._candidate is not None and self.steps > self._phase_end - TIMED:
                self._timed.append(dt)
        if self.steps < self._phase_end:
            return
        fenced = self._candidate is not None  # the times' allreduce below waits for all
        if fenced:
            same_point(f"the online tuner's timing exchange after tuning step {self.steps} "
                       f"(candidate {len(self.search.tried) + 1})", self.settings.process_set,
                       bounded=True)
            ms = hvd.allreduce(torch.tensor([statistics.median(self._timed) * 1e3]),
                               name=f"hvd_ext.tune.{self.steps}",
                               process_set=self.settings.process_set).item()
            self.search.record(ms)
        self._candidate, self._timed = self.search.next(), []
        if self._candidate is None:
            self._apply(self.search.best)
            self.done = True
            log.info("tuned in %d steps (%.1f s): %s; tried %s", self.steps, self.seconds,
                     self.search.best, [(s, round(ms, 1)) for s, ms in self.search.tried])
            return
        replanned = self._apply(self._candidate)
        self._phase_end = self.steps + TIMED + (self.search.space.settle(replanned) if fenced
                                                else int(replanned))

    def _agreed(self, claimed):
        """Whether every rank claimed Horovod's knobs: a rank may still hold an earlier
        optimizer's unfinished tuner that another rank has already collected, and ranks whose
        search spaces differed would time at different steps and wait on each other."""
        same_point("the online tuner's claim of Horovod's knobs at its first step",
                   self.settings.process_set, bounded=True)
        return hvd.allreduce(torch.tensor([int(claimed)]), op=hvd.Min,
                             name="hvd_ext.tune.claim",
                             process_set=self.settings.process_set).item() == 1

    def _apply(self, s):
        """Sets s; returns whether the bucket plan or the schedule changed."""
        if s != self.applied:
            self.engine.finish_deferred()
        if any(s[k] != self.applied[k] for k in PLAN):
            self.engine.replan(int(s["bucket_cap_mb"] * MB), int(s["first_bucket_mb"] * MB))
        if s["schedule"] != self.applied["schedule"]:
            self.engine.set_schedule(s["schedule"])
        changed = {k: s[k] for k in ("fusion_mb", "cycle_ms") if s[k] != self.applied[k]}
        if self._knobs and changed:
            # The allreduce of the times just completed on every rank: the fence.
            horovod_knobs.set_knobs(**changed, fence=False)
        settle = any(s[k] != self.applied[k] for k in SETTLING)
        self.applied = dict(s)
        return settle

    def report(self):
        """What ``optimizer.tuned`` shows."""
        return dict(done=self.done, steps=self.steps, seconds=self.seconds,
                    budget=self.search.space.steps, restarts=self.restarts,
                    chosen=dict(self.search.best) if self.done else None,
                    tried=[dict(s, ms=ms) for s, ms in self.search.tried],
                    horovod_knobs_tuned=self._knobs)
