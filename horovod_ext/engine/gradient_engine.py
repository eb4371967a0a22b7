"""The gradient bucket engine shared by sync and delayed mode: the way of a gradient from
autograd to the averaged value the inner step applies. See the package docstring for the map."""
from collections import deque

import torch

from horovod_ext.engine.bucket_set import BucketSet
from horovod_ext.engine.checkpoint import EngineCheckpoint
from horovod_ext.engine.planner import Planner
from horovod_ext.engine.schedule import EngineSchedule
from horovod_ext.engine.shared_codec_state import take_shared_codec_state
from horovod_ext.engine.sparse import SparseLane
from horovod_ext.runtime.failure import raise_hook_failure
from horovod_ext.runtime.wire import wire_bytes


class GradientEngine(EngineCheckpoint, EngineSchedule):
    # NOTE: [ring of bucket sets] Gradients live in ``n_sets`` BucketSets (staleness + 1; one in
    # sync mode), all built from one plan. The backward of a step accumulates into ``current``;
    # ``close_step()`` launches what is left of it, queues it in ``_pending`` and, once more than
    # ``n_sets - 1`` sets are queued, waits for the oldest and returns it as the one to apply.
    # That set is always the one after ``current`` in the ring, the next accumulation set, so
    # ``zero_grad()`` never touches a set in flight and ``p.grad`` is a view of one set at a time.

    def __init__(self, params, name_of, settings, n_sets, taps, lag=None, step_bucket=None):
        self.params = params            # parameters that get gradients, in registration order
        self.name_of = name_of          # parameter -> name (messages, agreement)
        self._index = {p: i for i, p in enumerate(params)}
        self.settings = settings
        self.backward_passes_per_step = settings.backward_passes_per_step
        self.taps = taps
        self.bytes_sent = 0.0           # by this rank, for every allreduce launched (wire.py)
        self.grad_steps = 0             # steps closed so far: the step of the current set's gradient
        self.codec = settings.codec
        # Called first by every entry from autograd and module hooks: the mode's check for a new
        # Horovod session (session.py), which restarts the engine before anything waits.
        self.follow_session = lambda: None
        self._agree_codec = self.codec.shared  # see take_shared_codec_state()
        self._extra = sum(t.extra for t in taps)
        self._snapshot = any(t.snapshot for t in taps)
        self._passes = [0] * len(params)  # backward passes seen this step, per parameter
        self._hook_error = None           # (parameter name, exception) of a failed hook
        self._sets = [BucketSet(s) for s in range(n_sets)]
        self._cur = 0                     # the set the next backward accumulates into
        self._pending = deque()           # sets launched, not applied yet, oldest first
        self._lag = n_sets - 1 if lag is None else lag  # sets queued before the oldest is applied
        # The launcher and when sets are applied (schedule.py); step_bucket allows "forward".
        self._start_schedule(
            lambda b: b.wait_exchange(self.name_of[b.params[0]]), step_bucket)
        self.sparse = SparseLane(params, settings, name_of)
        self.planner = Planner(params, settings)
        self._start_plan()
        self._show(self.current)
        if settings.process_set.included():
            # Never traced (compiled autograd would otherwise trace it once per parameter and
            # recompile): the hook launches Horovod collectives and runs eagerly.
            hook = torch.compiler.disable(self._on_grad_ready)
            for p in params:
                p.register_post_accumulate_grad_hook(hook)

    @property
    def current(self):
        """The set the next backward accumulates into."""
        return self._sets[self._cur]

    @property
    def bucket_count(self):
        return len(self._sets[0].buckets)

    @property
    def in_flight(self):
        """Sets queued and not applied, plus buckets launched and not applied."""
        return len(self._pending) + sum(len(s.launched) for s in self._sets)

    def buffers(self):
        """Every tensor the bucket sets hold: gradients, snapshots, the codec's buffers."""
        return [t for s in self._sets for b in s.buckets
                for t in [b.flat, b.snap] + self.codec.buffers(b.codec_state) if t is not None]

    # ---- plan -------------------------------------------------------------------------------
    def _start_plan(self):
        """Every set back to the construction-time plan and names (generation 0)."""
        self.planner.start()
        for s in self._sets:
            s.plan, s.generation = None, 0
            self._install(s)

    def _install(self, s):
        s.install(self.planner.plan, self.params, self.codec, self._snapshot, self._extra,
                  adopt=s is self.current, keep=self.sparse.keep)

    def _show(self, s):
        """``p.grad`` of every parameter shows set s."""
        s.point_grads(keep=self.sparse.keep)
        self.sparse.show(s)

    # ---- backward: hook -> ready -> launch --------------------------------------------------
    def _on_grad_ready(self, p):
        # NOTE: [hook errors] An exception here would leave this rank's buckets unlaunched and
        # the other ranks waiting for them; it is kept and raised by raise_hook_error() at
        # synchronize()/step(), which first shuts Horovod down so that the other ranks fail too.
        if self._hook_error is not None:
            return
        try:
            self.follow_session()
            self._mark_ready(p)
        except Exception as e:  # noqa: BLE001 - re-raised at step() with its cause
            self._hook_error = (self.name_of[p], e)

    def _mark_ready(self, p):
        if self.is_deferred(p):
            raise RuntimeError("it was read before its update from the previous step was "
                               "applied: Sync(overlap_forward=True) applies it when the forward "
                               "of a module holding it starts; read it there, or use Sync()")
        i, cur = self._index[p], self.current
        bucket, k = cur.locator.get(p, (None, None))
        if (bucket is not None and bucket.launched) \
                or self._passes[i] >= self.backward_passes_per_step:
            raise AssertionError("Gradients were computed more than backward_passes_per_step "
                                 "times before call to step(). Increase backward_passes_per_step "
                                 "to accumulate gradients locally. (An accumulation cut short, "
                                 "as by an epoch's last batches, needs its own step(): it "
                                 "applies the passes it has.)")
        gathered = self.sparse.note(p)
        if bucket is None and not gathered:
            raise ValueError("the gradient is dense on this rank but was sparse on rank 0 in the "
                             "first step; sparse_as_dense=True reduces both alike")
        if gathered and (self._snapshot or self._next_forward is not None):
            raise ValueError("delay compensation and overlap_forward need dense gradients; "
                             "pass sparse_as_dense=True for sparse ones")
        if not gathered and p.grad is not bucket.views[k]:  # set_to_none, create_graph=True...
            bucket.adopt_grads(keep=self.sparse.keep)
        self._passes[i] += 1
        if self._passes[i] == 1:
            self.planner.note_ready(i)
        if self._passes[i] < self.backward_passes_per_step:
            return
        if gathered:
            self.bytes_sent += self.sparse.launch(cur, p)
        if bucket is not None:  # a gathered parameter keeps a zero slot until the rebuild
            bucket.pending -= 1
            if bucket.pending == 0:
                self.launcher.ready(cur, bucket)
        self.launcher.pump(cur)
        if self.codec.stages > 1:  # a codec's next collective starts once the previous is done
            for s in self._sets:
                for b in s.launched:
                    b.advance()

    def _launch(self, s, bucket):
        """Starts the allreduce of one bucket of set s (its gradients are final for this step and
        every ``p.grad`` is its view: the hooks check their own parameter, close_step the rest)."""
        if self._agree_codec:
            self.take_shared_codec_state()
        for tap in self.taps:
            tap.on_launch(s, bucket, len(s.launched) == len(s.buckets) - 1)
        # Named after its first parameter too, so that two optimizers' buckets in flight at once
        # (delayed mode, a GAN's) differ, as Horovod's parameter-named collectives do.
        name = f"hvd_ext.grad.{s.generation}.{s.slot}.{bucket.index}.{self.name_of[bucket.params[0]]}"
        bucket.start_exchange(name, self.settings, s.step, self._count)
        s.launched.append(bucket)

    def _count(self, kind, tensor):
        """Adds what this rank sends for one collective on ``tensor`` (wire.py)."""
        self.bytes_sent += wire_bytes(kind, tensor.numel() * tensor.element_size(),
                                      self.settings.process_set.size())

    def take_shared_codec_state(self):
        """See NOTE: [shared codec state] in shared_codec_state.py."""
        self._agree_codec = False
        take_shared_codec_state(self)

    def reset_codec(self):
        """Elastic resize: every rank's codec state starts over, agreed again."""
        for s in self._sets:
            for b in s.buckets:
                self.codec.reset(b.codec_state)
        self._agree_codec = self.codec.shared

    def raise_hook_error(self):
        """Raises what a backward hook raised (see NOTE: [hook errors]), if anything."""
        if self._hook_error is None:
            return
        name, error = self._hook_error
        self._hook_error = None
        raise_hook_failure(name, error)

    # ---- after backward: close -> wait -> apply ---------------------------------------------
    def close_step(self, defer=False):
        """Launches the buckets that did not become ready during backward (unused parameters
        contribute zeros) and queues this step's set. Returns the set to apply, reduced, once
        more than ``lag`` are queued (None during warm-up, or when ``defer``: the next forward
        applies it, schedule.py); ``p.grad`` then shows it."""
        cur = self.current
        self.sparse.close()
        for p in self.sparse.gathered:
            if self._passes[self._index[p]] < self.backward_passes_per_step:
                self.bytes_sent += self.sparse.launch(cur, p)
        rest = [b for b in cur.buckets if b.pending]
        for b in rest:  # a parameter without gradient this step: its hook never ran
            b.adopt_grads(keep=self.sparse.keep)
        self.launcher.close(cur, rest)
        for tap in self.taps:
            tap.on_closed(cur)
        self._passes = [0] * len(self.params)
        self._pending.append(cur)
        self.grad_steps += 1
        apply = None
        if not defer and len(self._pending) > self._lag:
            apply = self._pending.popleft()
            self._finish(apply)
        if self.planner.due:
            self.sparse.adopt(self.planner.rebuild(self.sparse.indices()))
        # The next accumulation set: the one just finished, or a free one.
        self._cur = apply.slot if apply is not None else (self._cur + 1) % len(self._sets)
        nxt = self.current
        nxt.step = self.grad_steps
        if nxt.plan != self.planner.plan:
            self._install(nxt)
        self._show(nxt)
        if defer:
            self.defer(cur)
        return apply

    def release(self, s, applied=True):
        """Set s, closed with ``defer``, was applied bucket by bucket (or is dropped)."""
        self._pending.remove(s)
        if applied:
            return self._finish(s)
        self._drop(s)
        s.reset()

    def wait(self, s):
        """Waits for closed set s's allreduces, launching any held back, and unpacks them."""
        todo = [b for b in self.launcher.order(s) if not b.launched or b.exchange is not None]
        for b in todo:
            if self.codec.stages > 1:  # every bucket's next collective on the wire before waiting
                for other in s.launched:
                    other.advance()
            self.launcher.wait_for(s, b)
        self.sparse.wait(s)
        if todo:
            for tap in self.taps:
                tap.on_reduced(s)

    def _finish(self, s):  # set s becomes the gradient to apply
        self.wait(s)
        for tap in self.taps:
            tap.on_apply(s)
        self.launcher.forget(s)
        s.reset()

    def apply_pending(self):
        """Yields every queued set, oldest first, finished and shown in ``p.grad``: what
        ``flush()`` applies. Afterwards nothing is in flight."""
        while self._pending:
            s = self._pending.popleft()
            self._finish(s)
            self._cur = s.slot
            self._show(s)
            yield s

    def drop_in_flight(self):
        """Waits for every launched allreduce, keeping none of the results; one that fails (a
        rank died: elastic restore) is dropped as well."""
        for s in self._sets:
            self._drop(s)

    def _drop(self, s):
        """Set s's launched allreduces waited for and their results dropped; nothing held back."""
        for b in s.launched:
            b.drop()
        self.launcher.forget(s)
        self.sparse.drop(s)

    # ---- between steps ----------------------------------------------------------------------
    def check_idle(self, what):
        if self.current.launched:
            raise AssertionError(f"optimizer.{what}() was called after loss.backward() but "
                                 "before optimizer.step() or optimizer.synchronize(). This is "
                                 "prohibited as it can cause a race condition.")

    def zero_grad(self):
        """Zeroes the set the next backward accumulates into, never one in flight."""
        self.check_idle("zero_grad")
        self.current.zero(keep=self.sparse.keep)
        self.sparse.zero()

    def replan(self, cap, first_cap):
        """Buckets of at most ``cap`` bytes (the first ``first_cap``) from the next backward on:
        the set it accumulates into is rebuilt now (values kept), the others when they are
        next accumulated into (close_step). Call it on every rank between steps."""
        if self.planner.set_caps(cap, first_cap):
            self._install(self.current)
            self._show(self.current)

    def set_backward_passes_per_step(self, passes):
        self.backward_passes_per_step = passes
        self._passes = [0] * len(self.params)

