"""A codec: how one bucket crosses the wire. It encodes the bucket's flat tensor, runs one or
more collectives in sequence, and decodes the average back into it.

A codec sees a ``BucketView`` (view.py: the flat tensor, the tensors' shapes and names, its own
``state``), never the gradient engine. Its ``exchange`` is a generator: it yields a
``Collective`` (what to run: kind, tensor, name, op and scaling), receives the collective's
output when it completes (``Exchange`` launches it on the process set and drives the generator,
``replay`` answers it on this process alone), and so on; it decodes into ``view.flat`` before it
returns. What must survive a checkpoint is saved per tensor (``save``/``load``), so it outlives a
change of bucket plan.
"""
from dataclasses import dataclass
from typing import Any

import horovod.torch as hvd
import torch
from horovod.common.exceptions import HorovodInternalError
from horovod.torch.mpi_ops import Average, Sum

from horovod_ext.runtime.failure import another_rank_failed, drain

KINDS = ("allreduce", "alltoall", "allgather")


@dataclass(frozen=True)
class Collective:
    """One collective of an exchange: ``allreduce`` (in place, with op and pre/postscale),
    ``alltoall`` (row j of ``tensor`` to rank j; its output is (tensor, splits) as Horovod's) or
    ``allgather`` (every rank's ``tensor`` stacked along dim 0)."""

    kind: str
    tensor: torch.Tensor
    name: str
    op: Any = Average
    prescale: float = 1.0
    postscale: float = 1.0

    def launch(self, process_set):
        """The Horovod handle of this collective on ``process_set``."""
        if self.kind == "alltoall":
            return hvd.alltoall_async(self.tensor, name=self.name, process_set=process_set)
        if self.kind == "allgather":
            return hvd.allgather_async(self.tensor, name=self.name, process_set=process_set)
        return hvd.allreduce_async_(self.tensor, name=self.name, op=self.op,
                                    prescale_factor=self.prescale,
                                    postscale_factor=self.postscale, process_set=process_set)

    def answer(self, n, rank):
        """Its output on ``rank`` of n ranks that all sent this same tensor (``replay``)."""
        t = self.tensor
        if self.kind == "alltoall":
            return t[rank:rank + 1].expand(n, *t.shape[1:]).contiguous(), \
                torch.ones(n, dtype=torch.int32)
        if self.kind == "allgather":
            return t.repeat(n, *[1] * (t.dim() - 1))
        return t.mul_(self.prescale * self.postscale * (n if self.op == Sum else 1))


class Codec:
    """The interface. ``stages`` > 1: the engine advances exchanges between backward hooks, so
    a second collective starts as soon as the first completes."""

    name = "codec"
    stages = 1
    shared = False  # state every rank must hold alike (see shared_tensors)

    def check(self, settings):
        """Raises ValueError when the optimizer's arguments do not fit this codec."""

    def new_state(self, view):
        """The bucket's codec state (``view.state``), or None."""
        return None

    def buffers(self, state):
        """The tensors a bucket's state holds (memory accounting)."""
        return []

    def exchange(self, view, prefix, st, step):
        """Generator of the bucket's ``Collective``s under Settings st for the tensor of
        ``step``; ``prefix`` starts their names and is unique per bucket."""
        raise NotImplementedError

    def collectives(self, view, st, step):
        """(kind, elements, dtype) of each collective of ``exchange``, in order: the exchange
        replayed on a copy of ``view`` (so a codec writes its collectives once)."""
        scratch = view.scratch()
        scratch.state = self.new_state(scratch)
        return [(c.kind, c.tensor.numel(), c.tensor.dtype)
                for c in replay(self, scratch, st, step)]

    def shared_tensors(self, state):
        """The tensors of a bucket's state that must be equal on every rank: taken from the first
        rank after construction, a load or a resize (NOTE: [shared codec state] in shared.py)."""
        return []

    def save(self, state, k):
        """What to keep of tensor k's state (a dict of tensors), or None."""
        return None

    def load(self, state, k, saved):
        """Restores tensor k's state from ``save``'s dict."""

    def reset(self, state):
        """Forgets the learned state (elastic resize: other ranks, other averages)."""


def check_linear_op(codec, settings):
    """Compressed averages are linear: op must be Average or Sum."""
    if settings.op not in (Average, Sum):
        raise ValueError(f"compression={codec!r} reduces by averaging or summing: op must be "
                         f"hvd.Average or hvd.Sum")


def check_float32(codec, view, what):
    """ValueError naming the first parameter when ``view`` is not float32 (``what``: the codec's
    verb, "quantizes float32 gradients")."""
    if view.dtype != torch.float32:
        raise ValueError(f"compression={codec!r} {what}; parameter {view.names[0]} "
                         f"{tuple(view.shapes[0])} is {view.dtype}")


def scales(st):
    """(prescale, postscale) of an allreduce with Settings st, as hvd.DistributedOptimizer."""
    average = st.op == Average
    f = st.gradient_predivide_factor
    return (1.0 / f, f) if average else (1.0, 1.0)


def allreduce(tensor, name, st, op=None):
    """The allreduce of ``tensor`` in place with the optimizer's op and scaling."""
    pre, post = scales(st)
    return Collective("allreduce", tensor, name, st.op if op is None else op, pre, post)


def replay(codec, view, st, step):
    """Runs ``codec``'s exchange of ``view`` on this process alone, each collective answered
    as it would be if every rank of ``st.process_set`` had sent the same tensor; returns the
    collectives in order. The codec's own arithmetic, without the wire (the advisor's probe)."""
    n, rank = st.process_set.size(), st.process_set.rank()
    steps, done = codec.exchange(view, "replay", st, step), []
    c = next(steps, None)
    while c is not None:
        done.append(c)
        try:
            c = steps.send(c.answer(n, rank))
        except StopIteration:
            c = None
    return done


class Exchange:
    """Drives a codec's exchange of one view on ``process_set``: ``handle`` is the collective it
    waits on now (None once the view holds the decoded average); ``count(kind, tensor)`` adds
    what this rank sends."""

    def __init__(self, codec, view, prefix, st, step, count):
        self._steps = codec.exchange(view, prefix, st, step)
        self._process_set, self._count = st.process_set, count
        self.handle = self._launch(next(self._steps, None))

    def _launch(self, c):
        if c is None:
            return None
        self._count(c.kind, c.tensor)
        return c.launch(self._process_set)

    def advance(self, block):
        """Runs the stages whose collective completed (all of them with ``block``); True when the
        view holds the result."""
        while self.handle is not None:
            if not block and not hvd.poll(self.handle):
                return False
            out = hvd.synchronize(self.handle)
            self.handle = None
            try:
                self.handle = self._launch(self._steps.send(out))
            except StopIteration:
                pass
        return True

    def wait(self, what):
        """Waits for the result; ``what`` names the exchange when another rank failed."""
        try:
            self.advance(block=True)
        except HorovodInternalError as e:
            raise another_rank_failed(f"{what} did not complete", e) from e

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


class Wire:
    """A view crossing the wire through a codec: ``exchange`` is the one in flight (None when
    nothing is), as DiLoCo's rounds hold them."""

    def __init__(self, codec, view):
        self.codec, self.view, self.exchange = codec, view, None
        view.state = codec.new_state(view)

    def start(self, prefix, st, step, count):
        self.exchange = Exchange(self.codec, self.view, prefix, st, step, count)

    def advance(self):
        if self.exchange is not None:
            self.exchange.advance(block=False)

    def wait(self, what):
        """Leaves the decoded average in ``view.flat``, if anything was in flight."""
        if self.exchange is not None:
            try:
                self.exchange.wait(what)
            finally:
                self.exchange = None

    def saved(self):
        """The codec's state of each tensor of the view (error feedback, PowerSGD's Q)."""
        return [self.codec.save(self.view.state, k) for k in range(len(self.view.shapes))]

    def load_saved(self, per_tensor):
        for k, kept in enumerate(per_tensor):
            self.codec.load(self.view.state, k, kept)

    def drop(self, wait):
        """Forgets what is in flight: waits for its collective (``wait``) or abandons it (a
        Horovod session that is over); True when there was something."""
        if self.exchange is None:
            return False
        if wait:
            self.exchange.drop()
        else:
            self.exchange.abandon()
        self.exchange = None
        return True
