"""A bucket: one flat gradient buffer shared by a few parameters, and what is in flight for it.

Gradients live in the buffer: each parameter's ``p.grad`` is a view of its slice, so autograd
accumulates straight into the bucket and nothing is copied in the common case.
"""
import torch

from horovod_ext import ops
from horovod_ext.codecs import BucketView, Exchange


class Bucket:
    """Invariants: ``flat[offsets[k] : offsets[k] + params[k].numel()]`` is ``params[k]``'s
    gradient and ``views[k]`` is that slice shaped like the parameter; all params share dtype and
    device; ``launched`` is True from the launch of this bucket's allreduce until the set it
    belongs to is applied; ``exchange`` is the codec's exchange (codecs/base.py) from its launch
    until its result is taken; ``pending`` is the number of params whose gradient is not final
    for this step yet; ``view`` is what its codec sees (codecs/view.py), ``codec_state`` what the
    codec keeps for this bucket.
    """

    def __init__(self, index, params, codec, snapshot=False, extra=0, names=None):
        self.index = index
        self.params = params
        total = sum(p.numel() for p in params)
        self.numel = total
        p0 = params[0]
        # ``extra`` trailing elements travel with the gradients (the local squared norm of
        # gradient statistics rides there); ``grads`` is the flat gradient without them.
        self.flat = torch.zeros(total + extra, dtype=p0.dtype, device=p0.device)
        self.grads = self.flat[:total]
        self.view = BucketView(index, self.flat, [p.shape for p in params], names)
        self.offsets, self.views = self.view.offsets, self.view.views
        # The parameters at which the gradient was computed (delay compensation only).
        self.snap = torch.empty_like(self.flat) if snapshot else None
        self.pending = len(params)
        self.launched = False
        self.exchange = None
        self.codec = codec
        self.view.state = codec.new_state(self.view)

    @property
    def codec_state(self):
        return self.view.state

    @property
    def handle(self):
        """The Horovod handle the exchange waits on now; None when nothing is on the wire."""
        return None if self.exchange is None else self.exchange.handle

    def snapshot_of(self, k):
        """The parameters at which params[k]'s gradient was computed (None without snapshots)."""
        if self.snap is None:
            return None
        return self.snap[self.offsets[k]:self.offsets[k] + self.params[k].numel()]

    def adopt_grads(self, keep=()):
        """Makes every ``p.grad`` the bucket's view again: a gradient that autograd or user code
        replaced is copied in (pack kernel; a sparse one densified), a missing one becomes zeros.
        Never drops a value. Parameters in ``keep`` (gathered sparse) keep their ``p.grad`` and
        a zero slot."""
        for k, (p, view) in enumerate(zip(self.params, self.views)):
            g = p.grad
            if p in keep:
                view.zero_()
                continue
            if g is view:
                continue
            if g is None:
                view.zero_()
            else:
                if g.is_sparse:
                    g = g.to_dense()
                with torch.no_grad():
                    ops.pack([g.detach().contiguous()], self.flat, [self.offsets[k]], 1.0)
            p.grad = view

    def start_exchange(self, name, st, step, count):
        """Starts the bucket's exchange (its codec's first collective) under ``Settings`` st for
        the gradient of ``step``; ``count(kind, tensor)`` adds the bytes sent. Its gradients are
        final for this step and every ``p.grad`` is its view."""
        self.exchange = Exchange(self.codec, self.view, name, st, step, count)
        self.launched = True

    def advance(self):
        """Runs the codec's next stages whose collective completed, never waiting."""
        if self.exchange is not None:
            self.exchange.advance(block=False)

    def wait_exchange(self, name):
        """Waits for the exchange in flight, if any, which leaves the average in ``flat``;
        ``name`` (of the first parameter) is for the message when another rank failed."""
        if self.exchange is None:
            return
        try:
            self.exchange.wait(f"the exchange of gradient bucket {self.index} (first parameter "
                               f"{name!r})")
        finally:
            self.exchange = None

    def drop(self):
        """Waits for what is on the wire and keeps nothing of it."""
        if self.exchange is not None:
            self.exchange.drop()
            self.exchange = None

    def reset(self):
        """Ready for the next step's backward: nothing launched, every gradient pending."""
        self.launched = False
        self.pending = len(self.params)
