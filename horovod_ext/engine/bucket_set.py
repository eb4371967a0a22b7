"""A bucket set: the buckets that hold one step's gradient, built from one plan. The engine
keeps a ring of ``staleness + 1`` of them (one in sync mode)."""
import torch

from horovod_ext import ops
from horovod_ext.engine.bucket import Bucket


class BucketSet:
    """One slot of the ring. Invariants: ``buckets`` were built from ``plan`` and hold every
    parameter of the optimizer once; ``locator[p] = (bucket, k)`` with ``bucket.params[k] is p``;
    ``launched`` lists the buckets whose allreduce started for ``step``, in launch order, and is
    emptied when the set is applied; ``sparse[p]`` is the gathering of gathered sparse parameter
    p's gradient of ``step`` (a callable while in flight, then the sparse result; sparse.py);
    ``sq_norms`` is [mean_i |g_i|^2, |g_bar|^2] of ``step`` when
    the statistics tap measured it, None otherwise."""

    def __init__(self, slot):
        self.slot = slot
        self.buckets = []
        self.locator = {}
        self.plan = None
        self.generation = 0    # rebuilds so far: part of the collective names, new buffers
        self.step = 0          # the step whose gradient the set holds (or accumulates)
        self.launched = []
        self.sparse = {}
        self.sq_norms = None

    def install(self, plan, params, codec, snapshot, extra, adopt, keep):
        """(Re)builds the buckets from ``plan`` (lists of indices into ``params``), keeping every
        gradient value the set holds. ``adopt``: take in the gradients ``p.grad`` held before
        (the first build of the set the next backward accumulates into). ``keep``: gathered
        sparse parameters, whose slot (if the plan has one) stays zero. The codec's state is
        carried over per parameter too."""
        old = self.locator
        buckets = [Bucket(i, [params[j] for j in b], codec, snapshot, extra)
                   for i, b in enumerate(plan)]
        for b in buckets:
            if old:
                with torch.no_grad():
                    ops.pack([old[p][0].views[old[p][1]] if p in old else torch.zeros_like(p)
                              for p in b.params], b.flat, b.offsets, 1.0)
                for k, p in enumerate(b.params):
                    if p in old:
                        ob, ok = old[p]
                        codec.load(b.codec_state, k, codec.save(ob.codec_state, ok))
            elif adopt:
                b.adopt_grads(keep)
        if self.plan is not None:
            self.generation += 1
        self.buckets, self.plan = buckets, plan
        self.locator = {p: (b, k) for b in buckets for k, p in enumerate(b.params)}

    def saved(self, params):
        """The set's reduced gradient (and snapshots, statistics) for a state_dict."""
        entry = {"grads": [], "snapshots": [], "step": self.step,
                 "norms": None if self.sq_norms is None else self.sq_norms.clone()}
        for p in params:
            if p in self.sparse:
                entry["grads"].append(self.sparse[p].clone())
                entry["snapshots"].append(None)
                continue
            bucket, k = self.locator[p]
            snap = bucket.snapshot_of(k)
            entry["grads"].append(bucket.views[k].clone())
            entry["snapshots"].append(None if snap is None else snap.view_as(p).clone())
        return entry

    def restore(self, entry, params, measured):
        """The reverse of ``saved``; ``measured``: keep the saved statistics."""
        for p, g, w0 in zip(params, entry["grads"], entry["snapshots"]):
            if g.is_sparse:
                self.sparse[p] = g.clone()
                continue
            bucket, k = self.locator[p]
            bucket.views[k].copy_(g)
            snap = bucket.snapshot_of(k)
            if w0 is not None and snap is not None:
                snap.copy_(w0.view(-1))
        self.step = entry.get("step", 0)
        if measured and entry.get("norms") is not None:
            self.sq_norms = entry["norms"].clone()

    def codec_saved(self, params):
        """The codec's state of every parameter (None where it keeps none)."""
        out = []
        for p in params:
            bucket, k = self.locator.get(p, (None, None))
            out.append(None if bucket is None else bucket.codec.save(bucket.codec_state, k))
        return out

    def codec_restore(self, saved, params):
        for p, entry in zip(params, saved):
            bucket, k = self.locator.get(p, (None, None))
            if bucket is not None and entry is not None:
                bucket.codec.load(bucket.codec_state, k, entry)

    def point_grads(self, keep=()):
        """Makes every ``p.grad`` but those in ``keep`` a view of this set (values kept)."""
        for b in self.buckets:
            for p, view in zip(b.params, b.views):
                if p not in keep:
                    p.grad = view

    def zero(self, keep=()):
        """Zeroes the gradients; ``p.grad`` stays (or becomes again) the bucket's view, but for
        the parameters in ``keep``."""
        for b in self.buckets:
            b.flat.zero_()
            for p, view in zip(b.params, b.views):
                if p.grad is not view and p not in keep:
                    p.grad = view

    def reset(self):
        """After the set was applied (or dropped): nothing launched, nothing measured."""
        for b in self.buckets:
            b.reset()
        self.launched.clear()
        self.sq_norms = None
