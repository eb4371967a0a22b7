"""A codec: how one bucket's gradient crosses the wire. It encodes the flat gradient, runs one or
more asynchronous Horovod collectives in sequence, and decodes the average back into the bucket.

A codec's ``exchange`` is a generator: it launches a collective and yields its handle, receives
the collective's output when it completes (``Exchange`` drives it), and so on; it decodes into
``bucket.flat`` before it returns. Per-bucket state (buffers, error feedback, warm-start matrices)
lives in ``bucket.codec_state``, made by ``new_state``; what must survive a checkpoint is saved
per parameter (``save``/``load``), so it outlives a change of bucket plan.
"""
import horovod.torch as hvd
from horovod.torch.mpi_ops import Average, Sum

from horovod_ext.failure import drain


class Codec:
    """The interface. ``stages`` > 1: the engine advances exchanges between backward hooks, so
    a second collective starts as soon as the first completes."""

    name = "codec"
    stages = 1
    shared = False  # state every rank must hold alike (see shared_tensors)

    def check(self, settings):
        """Raises ValueError when the optimizer's arguments do not fit this codec."""

    def new_state(self, bucket):
        """The bucket's codec state (``bucket.codec_state``), or None."""
        return None

    def buffers(self, state):
        """The tensors a bucket's state holds (memory accounting)."""
        return []

    def exchange(self, bucket, name, st, step, count):
        """Generator: the bucket's collectives under Settings st for the gradient of ``step``;
        ``count(kind, tensor)`` adds what this rank sends; ``name`` is unique per bucket."""
        raise NotImplementedError

    def shared_tensors(self, state):
        """The tensors of a bucket's state that must be equal on every rank: taken from the first
        rank after construction, a load or a resize (NOTE: [codec agreement])."""
        return []

    def save(self, state, k):
        """What to keep of parameter k's state (a dict of tensors), or None."""
        return None

    def load(self, state, k, saved):
        """Restores parameter k's state from ``save``'s dict."""

    def reset(self, state):
        """Forgets the learned state (elastic resize: other ranks, other averages)."""


def check_linear_op(codec, settings):
    """Compressed averages are linear: op must be Average or Sum."""
    if settings.op not in (Average, Sum):
        raise ValueError(f"compression={codec!r} reduces by averaging or summing: op must be "
                         f"hvd.Average or hvd.Sum")


def scales(st):
    """(prescale, postscale) of an allreduce with Settings st, as hvd.DistributedOptimizer."""
    average = st.op == Average
    f = st.gradient_predivide_factor
    return (1.0 / f, f) if average else (1.0, 1.0)


def allreduce(tensor, name, st, count, op=None):
    """Launches the allreduce of ``tensor`` in place with the optimizer's op and scaling."""
    pre, post = scales(st)
    count("allreduce", tensor)
    return hvd.allreduce_async_(tensor, name=name, op=st.op if op is None else op,
                                prescale_factor=pre, postscale_factor=post,
                                process_set=st.process_set)


class Exchange:
    """Drives a codec's exchange generator: ``handle`` is the collective it waits on now (None
    once the bucket holds the decoded average)."""

    def __init__(self, steps):
        self._steps = steps
        self.handle = next(steps, None)

    def advance(self, block):
        """Runs the stages whose collective completed (all of them with ``block``); True when the
        bucket holds the result."""
        while self.handle is not None:
            if not block and not hvd.poll(self.handle):
                return False
            out = hvd.synchronize(self.handle)
            self.handle = None
            try:
                self.handle = self._steps.send(out)
            except StopIteration:
                pass
        return True

    def drop(self):
        """Waits for the collective in flight and abandons the rest (nothing decoded)."""
        drain([self.handle] if self.handle is not None else [])
        self.handle = None
        self._steps.close()

    def abandon(self):
        """Forgets the exchange without waiting: its collective belonged to a Horovod session
        that is over (see NOTE: [session token] in session.py)."""
        self.handle = None
        self._steps.close()
