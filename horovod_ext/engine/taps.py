"""Taps: features that look at or change the gradient at fixed points of its way through the
engine, so that none of them is spread over the engine's code.

The points, in the order a step's gradient passes them:
  ``on_launch(bucket_set, bucket, last)``  just before a bucket's allreduce starts (``last``: the
                                           set's final bucket of the step);
  ``on_closed(bucket_set)``                every bucket of the step has been launched;
  ``on_reduced(bucket_set)``               its allreduces completed (once per step);
  ``on_apply(bucket_set)``                 it becomes the gradient the inner step applies.
A tap may ask each bucket for ``extra`` trailing elements, which travel in the allreduce, and
for a ``snapshot`` buffer of the parameters.
"""
import torch

from horovod_ext import ops
from horovod_ext.runtime.failure import nonfinite_names


class Tap:
    extra = 0
    snapshot = False

    def on_launch(self, bucket_set, bucket, last):
        pass

    def on_closed(self, bucket_set):
        pass

    def on_reduced(self, bucket_set):
        pass

    def on_apply(self, bucket_set):
        pass


class StatisticsTap(Tap):
    """Feeds a ``GradientStats``. NOTE: [gradient statistics] Every bucket carries one extra
    element. At launch the bucket's local squared norm goes into ``_parts[bucket]`` (before the
    in-place allreduce overwrites the gradient); the step's last launch writes their sum into its
    own extra element, so the allreduce averages it over ranks for free. Once reduced, the
    averaged gradient's norm is taken; the pair is handed to the GradientStats when the set is
    applied, without waiting on the device."""

    extra = 1

    def __init__(self, stats):
        self.stats = stats
        self._parts = None  # local |g|^2 of each bucket of the step being launched

    def measured(self, bucket_set):
        return bucket_set.step % self.stats.every == 0

    def on_launch(self, bucket_set, bucket, last):
        if not self.measured(bucket_set):
            return
        n = len(bucket_set.buckets)
        if self._parts is None or self._parts.numel() != n or self._parts.device != bucket.flat.device:
            self._parts = torch.zeros(n, dtype=torch.float32, device=bucket.flat.device)
        ops.sq_norm([bucket.grads], self._parts[bucket.index:bucket.index + 1])
        if last:
            bucket.flat[-1:].copy_(self._parts.sum())

    def on_reduced(self, bucket_set):
        if not self.measured(bucket_set) or bucket_set.sq_norms is not None:
            return
        device = bucket_set.buckets[0].flat.device
        parts = torch.empty(len(bucket_set.buckets), dtype=torch.float32, device=device)
        for b in bucket_set.buckets:
            ops.sq_norm([b.grads], parts[b.index:b.index + 1])
        bucket_set.sq_norms = torch.stack([bucket_set.launched[-1].flat[-1].float(), parts.sum()])

    def on_apply(self, bucket_set):
        if bucket_set.sq_norms is not None:
            self.stats.queue(bucket_set.step, bucket_set.sq_norms)


class NonfiniteCheck(Tap):
    """``nonfinite='skip'|'raise'``: finds the parameters whose gradient to apply holds a NaN or
    an infinity; ``take_bad()`` hands them, with the step, to the mode. Every rank holds the same reduced
    values, so every rank finds the same parameters, and skips or raises alike."""

    def __init__(self, policy, name_of):
        self.policy = policy
        self._name_of = name_of
        self._bad = []
        self._step = None

    def on_apply(self, bucket_set):
        self._step = bucket_set.step  # the set is reused for a later step right after
        self._bad = []
        if self.policy == "ignore":
            return
        # Gathered sparse gradients (sparse.py) are checked by their values.
        groups = [([g._values()], [self._name_of[p]]) for p, g in bucket_set.sparse.items()
                  if isinstance(g, torch.Tensor)]
        norms = bucket_set.sq_norms  # when measured, a finite norm of the dense gradient suffices
        if norms is None or not bool(torch.isfinite(norms[1])):
            groups += [(b.views, [self._name_of[p] for p in b.params])
                       for b in bucket_set.buckets]
        self._bad = nonfinite_names(groups)

    def take_bad(self):
        """(names of the non-finite parameters, step) of the set applied last; then forgets."""
        bad, self._bad = self._bad, []
        return bad, self._step


class DelayCompensation(Tap):
    """DC-ASGD: the gradient applied at step t was computed at the parameters of step t - k;
    ``g + c * g * g * (w_t - w_{t-k})`` corrects for the difference to first order."""

    snapshot = True

    def __init__(self, c):
        self.c = c

    def on_closed(self, bucket_set):  # the parameters this step's gradient was computed at
        with torch.no_grad():
            for b in bucket_set.buckets:
                ops.pack(b.params, b.snap, b.offsets, 1.0)

    def on_apply(self, bucket_set):
        with torch.no_grad():
            for b in bucket_set.buckets:
                ops.dc_compensate(b.flat, b.params, b.snap, b.offsets, self.c)
