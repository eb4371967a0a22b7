"""The online tuner's search space and decision rule: which scheduling settings the first steps
of training try, and which one is kept. Pure (no Horovod); ``engine/tuner.py`` applies
the settings and times the steps.

Settings (a dict): ``schedule`` (when updates are applied: ``step`` or, where
``Sync(overlap_forward=True)`` allows it, ``forward``; engine/schedule.py), ``bucket_cap_mb`` and
``first_bucket_mb`` (the engine's plan) and, where the Horovod in use can change them at run
time, its ``fusion_mb`` and ``cycle_ms``. A setting the user gave is not tuned.

Schedule: WARMUP steps untimed (the first step also re-plans the buckets in the real gradient
order), then each candidate gets TIMED timed steps, after SETTLE untimed ones when it changes
the bucket plan or the schedule (a new plan allocates buckets and Horovod negotiates the new
collectives once; the first step of a new schedule is a transition)
and, in delayed mode, after ``staleness`` untimed ones whatever it changes (SearchSpace).
A candidate's time is the median of its timed steps on each rank (robust to one slow step on a
shared machine), averaged over ranks. Candidates are tried one knob at a time (coordinate
descent from the settings the optimizer starts with), each knob's values built from the best
found so far; a candidate replaces the best only when it is faster by more than MARGIN, so noise
does not move the settings away from the defaults. With the full space of Sync (2 bucket caps,
1 first bucket, 2 cycle times, 2 fusion thresholds besides the start) that is at most
WARMUP + TIMED + 3 x (SETTLE + TIMED) + SETTLE + 4 x TIMED = 30 steps (the SETTLE between: the
first Horovod candidate may go back to the best plan); the choice applies from the next step.
Knobs are left out in DROP_ORDER to stay within MAX_STEPS: the first bucket for
``overlap_forward`` (its schedule comes first: 30 steps) and for Delayed with staleness 1
(29 steps); larger staleness leaves out more.
"""
from horovod_ext.engine.plan import MB  # noqa: F401 - the unit of the settings

WARMUP, SETTLE, TIMED = 2, 1, 3
MARGIN = 0.02          # a candidate must be this much faster (relative) to replace the best
MAX_STEPS = 30         # no search space may take longer than this (checked at construction)
PLAN = ("bucket_cap_mb", "first_bucket_mb")  # the knobs that change the bucket plan
SETTLING = PLAN + ("schedule",)               # the knobs whose switch takes SETTLE steps
KNOBS = ("schedule", "bucket_cap_mb", "first_bucket_mb", "cycle_ms", "fusion_mb")  # in order


def _alternatives(model_mb, start):
    """knob -> the values tried besides the starting one, in the order tried."""
    cap = start["bucket_cap_mb"]
    return {
        # The next forward applies the update (overlaps it), or step() does.
        "schedule": ["step", "forward"],
        # Fewer, larger buckets (fewer launches; the wire starts later), up to the whole model.
        "bucket_cap_mb": sorted({c for c in (round(min(cap * f, model_mb), 3) for f in (4, 16))
                                 if c > cap * 1.5}),
        # No small first bucket: the last layers' gradients wait for a full one.
        "first_bucket_mb": "cap",
        "cycle_ms": [5.0, 20.0],
        "fusion_mb": [8, 1],
    }


DROP_ORDER = ("first_bucket_mb", "fusion_mb", "bucket_cap_mb", "cycle_ms", "schedule")


class SearchSpace:
    """``start``: the settings the optimizer starts with; ``tunable``: the knobs it may change
    (those the user did not set; Horovod's only with the run-time setter). ``model_mb``: the
    gradient's size. ``refill``: untimed steps after every switch (delayed mode's staleness:
    the times' allreduce waits for the collectives in flight, so the next steps find their
    gradients already reduced). When the space would take more than MAX_STEPS, knobs are left
    out in DROP_ORDER until it fits (``dropped``)."""

    def __init__(self, start, tunable, model_mb, refill=0):
        self.start = dict(start)
        self.refill = refill
        self._alt = _alternatives(model_mb, self.start)
        self.knobs = [k for k in KNOBS if k in tunable]
        self.dropped = []
        while self._steps() > MAX_STEPS:
            knob = next(k for k in DROP_ORDER if k in self.knobs)
            self.knobs.remove(knob)
            self.dropped.append(knob)
        self.steps = self._steps()

    def settle(self, replan):
        """Untimed steps after a switch."""
        return max(SETTLE * replan, self.refill)

    def _steps(self):
        settling = [k for k in self.knobs if k in SETTLING]
        steps = WARMUP + TIMED + sum(self._count(k) * (TIMED + self.settle(k in SETTLING))
                                     for k in self.knobs)
        # The first candidate after the settling knobs may go back to the best plan/schedule.
        if settling and len(settling) < len(self.knobs):
            steps += self.settle(True) - self.settle(False)
        return steps

    def _count(self, knob):
        if knob == "schedule":
            return 1
        return 1 if self._alt[knob] == "cap" else len(self._alt[knob])

    def values(self, knob, best):
        """The values of ``knob`` to try next, given the best settings so far."""
        alt = self._alt[knob]
        if alt == "cap":
            return [best["bucket_cap_mb"]] if best["first_bucket_mb"] < best["bucket_cap_mb"] \
                else []
        return [v for v in alt if v != best[knob]]


class Search:
    """The decision rule over a SearchSpace: ``next()`` gives the settings to time next (None
    when done); ``record(ms)`` gives it its time, averaged over ranks (so every rank decides the
    same); ``best`` is the fastest so far; ``tried`` lists (settings, ms) in order."""

    def __init__(self, space):
        self.space = space
        self.best, self.best_ms = dict(space.start), None
        self.tried = []
        self._queue = [dict(space.start)]
        self._knobs = list(space.knobs)
        self._current = None

    def next(self):
        while not self._queue and self._knobs:
            knob = self._knobs.pop(0)
            self._queue = [dict(self.best, **{knob: v}) for v in self.space.values(knob, self.best)]
        self._current = self._queue.pop(0) if self._queue else None
        return self._current

    def record(self, ms):
        self.tried.append((self._current, ms))
        if self.best_ms is None or ms < self.best_ms * (1 - MARGIN):
            self.best, self.best_ms = self._current, ms
