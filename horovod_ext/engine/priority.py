"""When a bucket whose gradients are final goes on the wire.

``Fifo`` launches it at once (Horovod's order: the order backward produces gradients).
``Priority`` keeps a window of a set's buckets in flight (WINDOW buckets, more while their bytes
are fewer than the link moves in one Horovod cycle), so that what has not been launched can
still be reordered: during backward in the order the gradients become ready; once backward
ends (``close``), the rest in the order the next forward needs them, its first layers first (the
highest bucket index first: buckets are planned in backward order). So the first layers'
gradients, produced last, do not queue behind the backlog of the last layers', and the backlog
crosses the wire while the next forward runs (engine/schedule.py, engine/overlap.py).

NOTE: [window in bytes] Horovod starts what was launched at its next cycle. A bucket launched
when another completes waits up to one cycle, so the buckets still moving must keep the wire busy
that long: the window holds WINDOW buckets, and more while the bytes moving (less the largest
one) are fewer than the link moves in a cycle. The link's rate is what the wire drained after
backward: a set's bytes launched after ``close`` over the time from ``close`` to its last
bucket taken (a lower bound: the wire may have idled), the highest of the last RATE_SETS sets.

NOTE: [no deadlock] A Horovod collective completes when every rank has launched it. During
backward nothing is waited for (a bucket held back is launched by a later hook or by close), so
which buckets were launched before ``close`` may differ between ranks. After ``close`` every rank
launches what it has left in one global order (forward order), and ``wait_for`` blocks only on
the oldest bucket this rank launched after ``close``, or, once it has launched everything, on
any bucket. Suppose ranks wait in a cycle, each on a bucket the next one has not launched. A
rank that has launched everything cannot be waited on, so each rank in the cycle waits on b_i,
the oldest of its after-close buckets, and holds back the rest of its list. The next rank has
not launched b_i, so b_i is still in its list, after everything it launched after close, hence
after b_(i+1) in the global order. Around the cycle each b_i would come after the next: there
is no such cycle.
"""
import time
from collections import deque

import horovod.torch as hvd

WINDOW = 2     # buckets of one set on the wire at least: one moving, one queued behind it
RATE_SETS = 8  # sets the link's rate is taken over (the highest of them)


def _nbytes(b):
    return b.flat.numel() * b.flat.element_size()


def window_open(moving, rate, cycle_ms):
    """Whether a set with buckets of ``moving`` bytes on the wire launches one more, at a link
    ``rate`` (bytes/s, None: not measured yet) and a cycle of ``cycle_ms`` (NOTE: [window in
    bytes])."""
    if len(moving) < WINDOW:
        return True
    return rate is not None and sum(moving) - max(moving) < rate * cycle_ms * 1e-3


class Fifo:
    def __init__(self, launch, take):
        self._launch, self._take = launch, take

    def ready(self, s, bucket):
        self._launch(s, bucket)

    def close(self, s, rest):
        for b in rest:
            self._launch(s, b)

    def pump(self, s):
        pass

    def order(self, s):
        return list(s.launched)

    def wait_for(self, s, bucket):
        self._take(bucket)

    def forget(self, s):
        pass


class Priority:
    """``launch(s, bucket)`` starts a bucket's allreduce, ``take(bucket)`` waits for it and
    unpacks the result (the engine's). Per set: ``held`` (ready, not launched, backward order),
    ``post`` (not launched at close, forward order), ``after_close`` (launched after close, not
    taken yet, launch order). ``cycle_ms()``: Horovod's cycle time now (NOTE: [window in
    bytes]); ``rate``: bytes per second, None before a set was drained."""

    def __init__(self, launch, take, cycle_ms):
        self._launch, self._take_bucket, self._cycle_ms = launch, take, cycle_ms
        self._held, self._post, self._after_close = {}, {}, {}
        self._drain = {}                      # slot -> [time of close, bytes after, last take]
        self._rates = deque(maxlen=RATE_SETS)
        self.most_moving = 0                  # the most buckets it has had on the wire at once

    @property
    def rate(self):
        return max(self._rates) if self._rates else None

    def _open(self, launched):
        """Whether the window takes one more bucket."""
        moving = [_nbytes(b) for b in launched if b.handle is not None and not hvd.poll(b.handle)]
        if not window_open(moving, self.rate, self._cycle_ms()):
            return False
        self.most_moving = max(self.most_moving, len(moving) + 1)
        return True

    def _take(self, s, b):
        self._take_bucket(b)
        drain = self._drain.get(s.slot)
        if drain is not None:
            drain[2] = time.perf_counter()

    def ready(self, s, bucket):
        self._held.setdefault(s.slot, deque()).append(bucket)
        self.pump(s)

    def close(self, s, rest):
        """Backward has ended: everything not launched yet goes in forward order."""
        held = list(self._held.pop(s.slot, ())) + list(rest)
        self._post[s.slot] = deque(sorted(held, key=lambda b: -b.index))
        self._after_close[s.slot] = deque()
        self._drain[s.slot] = [time.perf_counter(), sum(map(_nbytes, self._post[s.slot])), None]
        self.pump(s)

    def pump(self, s):
        """Launches what the window allows, never waiting."""
        if s.slot in self._post:
            post, after = self._post[s.slot], self._after_close[s.slot]
            while post and self._open(after):
                b = post.popleft()
                self._launch(s, b)
                after.append(b)
            return
        held = self._held.get(s.slot)
        while held and self._open(s.launched):
            self._launch(s, held.popleft())

    def order(self, s):
        """The order to wait for a closed set's buckets in: the next forward's."""
        return sorted(s.buckets, key=lambda b: -b.index)

    def wait_for(self, s, bucket):
        """Waits until ``bucket`` of set s (closed) is reduced, launching the rest in order on
        the way and blocking only as NOTE: [no deadlock] allows."""
        post, after = self._post[s.slot], self._after_close[s.slot]
        while True:
            self.pump(s)
            if bucket.launched and (bucket.handle is None or hvd.poll(bucket.handle)):
                self._take(s, bucket)
                return
            while after and after[0].handle is None:
                after.popleft()
            if after:
                self._take(s, after.popleft())
            elif not post:
                self._take(s, bucket)
                return

    def forget(self, s):
        """Set s is applied or dropped."""
        drain = self._drain.pop(s.slot, None)
        if drain is not None and drain[1] and drain[2] is not None and drain[2] > drain[0]:
            self._rates.append(drain[1] / (drain[2] - drain[0]))
        for table in (self._held, self._post, self._after_close):
            table.pop(s.slot, None)
