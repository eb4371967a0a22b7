"""When a closed set's update is applied, the engine's scheduling strategy (gradient_engine.py
mixes this in; it owns it as it owns the launcher):

- ``step``: at ``step()``, one inner step on the whole set (Horovod's way). Launcher ``Fifo``.
- ``forward``: by the next forward, bucket by bucket (overlap.py; ``Sync(overlap_forward=True)``
  allows it and starts with it). Launcher ``Priority``, whose window in bytes grows with Horovod's
  cycle time (priority.py).

The schedule changes between steps only, after what is deferred has been applied (the online
tuner chooses between them, engine/tuner.py).
"""
import weakref

from horovod_ext.engine.overlap import NextForward, finish_through, watch_forwards
from horovod_ext.engine.priority import Fifo, Priority
from horovod_ext.runtime import horovod_knobs

SCHEDULES = ("step", "forward")


class EngineSchedule:
    def _start_schedule(self, take, step_bucket):
        """``take(bucket)`` waits for a bucket and unpacks it; ``step_bucket(b)`` applies one
        bucket (overlap.bucket_step), None when only ``step`` is allowed."""
        self._fifo = Fifo(self._launch, take)
        self._priority = Priority(self._launch, take, lambda: horovod_knobs.current()[1])
        self._next_forward = None
        if step_bucket is not None:
            self._next_forward = NextForward(self._priority.wait_for, step_bucket)
            self._ref = watch_forwards(self)
            self._watched = weakref.WeakSet()  # modules given our state_dict hooks
        self.schedule = None
        self.set_schedule("step" if step_bucket is None else "forward")

    @property
    def schedules(self):
        """The schedules this engine may use."""
        return SCHEDULES if self._next_forward is not None else SCHEDULES[:1]

    @property
    def applied_in_forward(self):
        """Buckets a module's forward pre-hook has applied so far."""
        return 0 if self._next_forward is None else self._next_forward.applied_in_forward

    @property
    def deferred(self):
        """Whether a closed set waits for the next forward."""
        return self._next_forward is not None and self._next_forward.set is not None

    def is_deferred(self, p):
        return self._next_forward is not None and self._next_forward.is_pending(p)

    def set_schedule(self, name):
        """From the next step on (call it on every rank between steps)."""
        if name not in self.schedules:
            raise ValueError(f"schedule must be one of {self.schedules}; got {name!r}")
        self.finish_deferred()
        self.schedule = name
        self.launcher = self._priority if name == "forward" else self._fifo

    def defer(self, s):
        """Closed set s (close_step(defer=True)) is applied by the next forward."""
        self._next_forward.defer(s)
        s.point_grads(keep=self.sparse.keep)  # p.grad shows the step's gradient

    def on_forward(self, module):
        """Every module's forward pre-hook (overlap.watch_forwards)."""
        self.follow_session()
        if module not in self._watched:
            self._watched.add(module)
            module.register_state_dict_pre_hook(finish_through(self._ref))
            module.register_load_state_dict_pre_hook(finish_through(self._ref))
        if not self.deferred:
            return
        s = self._next_forward.set
        if self._next_forward.on_forward(module):
            self.release(self._next_forward.take())
        else:
            self.launcher.pump(s)

    def finish_deferred(self):
        """Applies every bucket still deferred, in the next forward's order."""
        self.follow_session()
        if self.deferred:
            self._next_forward.finish()
            self.release(self._next_forward.take())

    def drop_deferred(self):
        """Forgets the deferred set unapplied (a state is loaded over it)."""
        if self.deferred:
            self.release(self._next_forward.take(), applied=False)
