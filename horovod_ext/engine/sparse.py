"""Sparse gradients (``nn.Embedding(sparse=True)``, ``nn.EmbeddingBag(sparse=True)``), reduced
as ``hvd.DistributedOptimizer`` reduces them, so that optimizers that need them sparse
(``torch.optim.SparseAdam``) get them sparse.

- ``sparse_as_dense=False``: every rank's indices and values are gathered (Horovod's
  ``sparse_allreduce_async``; values divided by the number of ranks for Average) and ``p.grad``
  is the gathered sparse tensor. Such a parameter is *gathered*: it leaves the bucket plan when
  the plan is rebuilt after the first step, and each bucket set keeps its collective in
  ``bucket_set.sparse``, so delayed mode carries it through the ring like a bucket.
- ``sparse_as_dense=True``: the gradient is densified into its bucket and allreduced with it;
  the inner step sees the result as sparse again (``to_sparse()``, as Horovod does).

A parameter is known to be sparse from its first sparse gradient, so the engine leaves
``p.grad`` to autograd until a parameter's first gradient is seen (a dense bucket view would
make autograd accumulate a sparse gradient densely); a parameter still without gradient when
the first step closes is taken as dense. NOTE: [sparse and unused] as
with Horovod, a parameter whose gradient is sparse must get one on every rank in the first step
it gets one anywhere (rank 0's knowledge is shared with the plan rebuild after the first step);
afterwards a rank where it gets none this step contributes an empty sparse gradient.
"""
import horovod.torch as hvd
import torch
from horovod.common.exceptions import HorovodInternalError

from horovod_ext.runtime.failure import another_rank_failed
from horovod_ext.runtime.wire import wire_bytes


class SparseLane:
    def __init__(self, params, settings, name_of):
        self.params = params
        self.settings = settings
        self.name_of = name_of
        self.gathered = {}   # parameter -> sparse_dim of its gradient (sparse_as_dense=False)
        self.as_dense = {}   # parameter -> sparse_dim (sparse_as_dense=True)
        self.undecided = set(params)  # no gradient seen yet
        self.keep = set(params)  # gathered | undecided: p.grad is not a bucket view

    def note(self, p):
        """Called with each ready gradient; True when the lane gathers it (not a bucket)."""
        g = p.grad
        if p in self.undecided:
            self.undecided.discard(p)
            self.keep.discard(p)
        if g is None or not g.is_sparse:
            return False
        known = self.as_dense if self.settings.sparse_as_dense else self.gathered
        known[p] = g.sparse_dim()
        if known is self.gathered:
            self.keep.add(p)
        return not self.settings.sparse_as_dense

    def close(self):
        """The first step closes: parameters without gradient so far are dense."""
        if self.undecided:
            self.undecided.clear()
            self.keep = set(self.gathered)

    def adopt(self, gathered_indices):
        """Rank 0's gathered parameters (indices, from the plan rebuild) become this rank's."""
        self.gathered = {self.params[i]: d for i, d in gathered_indices.items()}
        self.keep = set(self.gathered) | self.undecided

    def indices(self):
        index = {p: i for i, p in enumerate(self.params)}
        return {index[p]: d for p, d in self.gathered.items()}

    def launch(self, s, p):
        """Starts gathering p's gradient of set s's step (an empty one if p has none sparse).
        Returns the bytes this rank sends."""
        st = self.settings
        g = p.grad
        if g is None or not g.is_sparse:
            d = self.gathered[p]
            g = torch.sparse_coo_tensor(torch.empty((d, 0), dtype=torch.long, device=p.device),
                                        p.new_empty((0,) + tuple(p.shape[d:])), p.shape,
                                        check_invariants=True)
        g = g.detach()
        s.sparse[p] = hvd.sparse_allreduce_async(g, name=f"hvd_ext.sparse.{s.slot}."
                                                 f"{self.name_of[p]}", op=st.op,
                                                 process_set=st.process_set)
        nbytes = g._indices().numel() * 8 + g._values().numel() * g.element_size()
        return wire_bytes("allgather", nbytes, st.process_set.size())

    def wait(self, s):
        for p, result in s.sparse.items():
            if callable(result):
                s.sparse[p] = None
                try:
                    s.sparse[p] = result()
                except HorovodInternalError as e:
                    raise another_rank_failed(f"the gathering of sparse gradient "
                                              f"{self.name_of[p]!r} did not complete", e) from e

    def drop(self, s):
        """Waits for set s's gatherings and forgets them (a failed one too)."""
        for result in s.sparse.values():
            if callable(result):
                try:
                    result()
                except HorovodInternalError:
                    pass
        s.sparse.clear()

    def show(self, s):
        """``p.grad`` of every sparse parameter shows set s (after ``s.point_grads``)."""
        for p in self.gathered:
            result = s.sparse.get(p)
            p.grad = result if isinstance(result, torch.Tensor) else None
        for p in self.as_dense:
            if p in s.locator:
                bucket, k = s.locator[p]
                p.grad = bucket.views[k].to_sparse()

    def zero(self):
        """zero_grad: gathered gradients become None (the next backward makes new ones)."""
        for p in self.keep:
            p.grad = None
