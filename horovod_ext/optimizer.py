"""The optimizer front: ``horovod_ext.DistributedOptimizer``, a drop-in for
``hvd.DistributedOptimizer`` that reduces gradients in buckets launched during backward.

Control flow, as verbs: ``_on_grad_ready`` (autograd hook) -> ``_mark_bucket_ready`` ->
``_launch`` (Horovod ``allreduce_async_`` of the flat bucket) -> ``synchronize`` (wait in launch
order, unpack, rebuild the plan once from the real gradient order) -> the inner ``step``.
"""
import warnings
from contextlib import contextmanager

import horovod.torch as hvd
import torch
from horovod.torch.functions import broadcast_object
from horovod.torch.mpi_ops import Adasum, Average, Sum, global_process_set

from horovod_ext import _C
from horovod_ext.buckets import MB, Bucket, plan_buckets, split_groups
from horovod_ext.compression import KERNEL_CASTS, Compression
from horovod_ext.modes import resolve_mode


class _DistributedOptimizer(torch.optim.Optimizer):
    def __init__(self, params, named_parameters, compression, backward_passes_per_step, op,
                 gradient_predivide_factor, groups, sparse_as_dense, process_set, mode,
                 bucket_cap_mb, first_bucket_mb):
        super(self.__class__, self).__init__(params)
        self.mode = mode
        self._compression = compression
        self.backward_passes_per_step = backward_passes_per_step
        self.op = op
        self.gradient_predivide_factor = gradient_predivide_factor
        self.sparse_as_dense = sparse_as_dense  # sparse gradients are always reduced densely
        self.process_set = process_set
        self._cap_bytes = int(bucket_cap_mb * MB)
        self._first_cap_bytes = int(first_bucket_mb * MB)
        self._groups = groups

        names = _parameter_names(self.param_groups, named_parameters)
        # Parameters that get gradients, in registration order; names for messages and plans.
        self._params = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
        self._names = [names[p] for p in self._params]
        self._index = {p: i for i, p in enumerate(self._params)}
        self._passes = [0] * len(self._params)  # backward passes seen this step, per param
        self._buckets = []          # current plan's buckets
        self._locator = {}          # param -> (bucket, slot)
        self._in_flight = []        # buckets launched this step, in launch order
        self._generation = 0        # bumps when the plan is rebuilt (part of collective names)
        self._ready_order = []      # param indices in the order gradients became ready (1st step)
        self._rebuilt = groups is not None  # explicit groups are never re-planned
        self._synchronized = False
        self._should_synchronize = True
        self._active = process_set.included()

        if groups is not None:
            plan = split_groups(groups, self._params)
        else:
            plan = self._plan(list(reversed(range(len(self._params)))))
        self._install_plan(plan)
        if self._active:
            for p in self._params:
                p.register_post_accumulate_grad_hook(self._on_grad_ready)

    # ---- plan and state -------------------------------------------------------------------
    def _plan(self, order):
        ps = self._params
        return plan_buckets([p.numel() for p in ps], [p.element_size() for p in ps],
                            [(p.dtype, p.device) for p in ps], order, self._cap_bytes,
                            self._first_cap_bytes)

    def _install_plan(self, plan):
        comm_dtype = KERNEL_CASTS.get(self._compression)
        old_grads = [p.grad for p in self._params]
        self._buckets = [Bucket(i, [self._params[j] for j in b], comm_dtype)
                         for i, b in enumerate(plan)]
        self._locator = {p: (b, k) for b in self._buckets for k, p in enumerate(b.params)}
        for p, g in zip(self._params, old_grads):
            p.grad = g
        for b in self._buckets:
            b.adopt_grads()  # current gradients move into the new buckets

    def _rebuild_from_ready_order(self):
        """Once, after the first step: re-plan with the order in which gradients really became
        ready (rank 0's order, so every rank agrees), unused parameters last."""
        self._rebuilt = True
        order = broadcast_object(self._ready_order, root_rank=0, process_set=self.process_set)
        seen = set(order)
        order = list(order) + [i for i in reversed(range(len(self._params))) if i not in seen]
        plan = self._plan(order)
        if plan != [[self._index[p] for p in b.params] for b in self._buckets]:
            self._generation += 1
            self._install_plan(plan)

    # ---- backward: hooks -> ready -> launch -------------------------------------------------
    def _on_grad_ready(self, p):
        i = self._index[p]
        bucket, slot = self._locator[p]
        if bucket.handle is not None or self._passes[i] >= self.backward_passes_per_step:
            raise AssertionError("Gradients were computed more than backward_passes_per_step "
                                 "times before call to step(). Increase backward_passes_per_step "
                                 "to accumulate gradients locally.")
        if p.grad is not bucket.views[slot]:  # set_to_none by user code, create_graph=True, ...
            bucket.adopt_grads()
        self._passes[i] += 1
        if not self._rebuilt and self._passes[i] == 1:
            self._ready_order.append(i)
        if self._passes[i] == self.backward_passes_per_step:
            bucket.pending -= 1
            if bucket.pending == 0:
                self._launch(bucket)

    def _launch(self, bucket):
        """Starts the allreduce of one bucket (the gradients it holds are final for this step)."""
        bucket.adopt_grads()
        average = self.op == Average
        prescale = 1.0 / self.gradient_predivide_factor if average else 1.0
        postscale = self.gradient_predivide_factor if average else 1.0
        name = f"hvd_ext.grad.{self._generation}.{bucket.index}"
        if bucket.comm is not None:
            # Cast + prescale in one pass; the average's 1/size is folded into the unpack.
            _C.pack([bucket.flat], bucket.comm, [0], prescale)
            bucket.handle = hvd.allreduce_async_(bucket.comm, name=name,
                                                 op=Sum if average else self.op,
                                                 process_set=self.process_set)
        else:
            tensor = bucket.flat
            if self._compression not in KERNEL_CASTS:  # a user-supplied Compressor
                tensor, bucket.ctx = self._compression.compress(bucket.flat)
            bucket.handle = hvd.allreduce_async_(tensor, name=name, op=self.op,
                                                 prescale_factor=prescale,
                                                 postscale_factor=postscale,
                                                 process_set=self.process_set)
        self._in_flight.append(bucket)

    # ---- Horovod's optimizer interface ------------------------------------------------------
    def synchronize(self):
        """Launches the buckets that did not become ready during backward (unused parameters
        contribute zeros), waits for every bucket in launch order and leaves the averaged
        gradients in ``p.grad``."""
        if not self._active:
            self._synchronized = True
            return
        for b in self._buckets:
            if b.handle is None:
                self._launch(b)
        for b in self._in_flight:
            output = hvd.synchronize(b.handle)
            b.handle = None
            if b.comm is not None:
                scale = self.gradient_predivide_factor / self.process_set.size() \
                    if self.op == Average else 1.0
                _C.unpack(b.comm, [0], [b.flat], scale, False)
            elif output is not b.flat:
                b.flat.copy_(self._compression.decompress(output, b.ctx).view(-1))
            b.pending = len(b.params)
        self._in_flight.clear()
        self._passes = [0] * len(self._params)
        if not self._rebuilt and self._ready_order:
            self._rebuild_from_ready_order()
        self._synchronized = True

    @contextmanager
    def skip_synchronize(self):
        """``optimizer.synchronize(); <clip>; with optimizer.skip_synchronize(): optimizer.step()``"""
        self._should_synchronize = False
        try:
            yield
        finally:
            self._should_synchronize = True

    def step(self, closure=None, loss=None):
        """Waits for the gradients' allreduce, then runs the wrapped optimizer's step. ``loss`` is
        accepted for every mode and used only by leader-based ones."""
        if self._should_synchronize:
            if self._synchronized:
                warnings.warn("optimizer.step() called without optimizer.skip_synchronize() "
                              "context after optimizer.synchronize(). This can cause training "
                              "slowdown. You may want to consider using "
                              "optimizer.skip_synchronize() context if you use "
                              "optimizer.synchronize() in your code.")
            self.synchronize()
        self._synchronized = False
        return super(self.__class__, self).step(closure)

    def flush(self):
        """Applies every gradient still in flight. Synchronous mode leaves none: a no-op."""

    def zero_grad(self, set_to_none=True):
        """Zeroes the gradient buckets. ``p.grad`` stays a view of its bucket even when
        ``set_to_none=True`` (zeros and None mean the same to every torch optimizer step that
        follows a backward, and keeping the view saves a copy per parameter per step)."""
        if self._in_flight:
            raise AssertionError("optimizer.zero_grad() was called after loss.backward() but "
                                 "before optimizer.step() or optimizer.synchronize(). This is "
                                 "prohibited as it can cause a race condition.")
        for b in self._buckets:
            b.flat.zero_()
            for p, view in zip(b.params, b.views):
                if p.grad is not view:
                    p.grad = view

    def set_backward_passes_per_step(self, passes):
        _check_positive_int("backward_passes_per_step", passes)
        self.backward_passes_per_step = passes
        self._passes = [0] * len(self._params)

    def load_state_dict(self, *args, **kwargs):
        if self._in_flight:
            self.synchronize()
        self._synchronized = False
        self._should_synchronize = True
        super(self.__class__, self).load_state_dict(*args, **kwargs)


def _parameter_names(param_groups, named_parameters):
    """Horovod's naming rules and checks: names unique, every optimizer parameter named."""
    if named_parameters is None:
        return {v: f"allreduce.noname.{i}.{j}" for i, g in enumerate(param_groups)
                for j, v in enumerate(g["params"])}
    named_parameters = list(named_parameters)
    if any(not isinstance(p, tuple) for p in named_parameters):
        raise ValueError("named_parameters should be a sequence of tuples (name, parameter), "
                         "usually produced by model.named_parameters().")
    seen, dups = set(), set()
    for k, _ in named_parameters:
        (dups if k in seen else seen).add(k)
    if dups:
        raise ValueError("Parameter names in named_parameters must be unique. Found duplicates: "
                         + ", ".join(sorted(dups)))
    names = {v: k for k, v in named_parameters}
    unnamed = [i for i, g in enumerate(param_groups) for p in g["params"] if p not in names]
    if unnamed:
        raise ValueError("named_parameters was specified, but one or more model parameters were "
                         f"not named (in param groups {sorted(set(unnamed))}).")
    return names


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}")


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0; got {value!r}")


def DistributedOptimizer(optimizer, named_parameters=None, compression=Compression.none,
                         backward_passes_per_step=1, op=Average, gradient_predivide_factor=1.0,
                         num_groups=0, groups=None, sparse_as_dense=False,
                         process_set=global_process_set, *, mode="sync", bucket_cap_mb=25,
                         first_bucket_mb=1):
    """Wraps ``optimizer`` like ``hvd.DistributedOptimizer`` (same arguments, same meaning) and
    returns an instance of a subclass of its class.

    Gradients are gathered in flat buckets (``bucket_cap_mb``, a smaller first bucket of
    ``first_bucket_mb``) in backward order; each bucket's allreduce starts the moment its last
    gradient is accumulated, so communication overlaps the rest of backprop. ``mode`` picks the
    synchronisation algorithm (``"sync"``, the exact default). ``groups``/``num_groups`` replace
    the automatic plan with Horovod's explicit grouping (one bucket per group).
    """
    mode = resolve_mode(mode)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}")
    _check_positive_int("backward_passes_per_step", backward_passes_per_step)
    _check_positive("gradient_predivide_factor", gradient_predivide_factor)
    _check_positive("bucket_cap_mb", bucket_cap_mb)
    _check_positive("first_bucket_mb", first_bucket_mb)
    if op == Adasum:
        raise ValueError("op=Adasum is not supported by horovod_ext.DistributedOptimizer (Adasum "
                         "combines per tensor, not per bucket); use hvd.DistributedOptimizer")
    if gradient_predivide_factor != 1.0 and op != Average:
        raise ValueError("gradient_predivide_factor not supported with op != Average")
    if not (compression in KERNEL_CASTS or hasattr(compression, "compress")):
        raise ValueError("compression must be a Horovod Compressor such as "
                         "horovod_ext.Compression.fp16")
    if num_groups != 0:
        if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 0:
            raise ValueError(f"num_groups must be an int >= 0; got {num_groups!r}")
        if groups is None:
            groups = num_groups
    if groups is not None:
        if isinstance(groups, int) and not isinstance(groups, bool):
            _check_positive_int("groups", groups)
        elif isinstance(groups, list):
            ids = [id(p) for g in groups for p in g]
            if any(not isinstance(p, torch.Tensor) for g in groups for p in g):
                raise ValueError("groups must consist of torch.Tensor.")
            if len(ids) != len(set(ids)):
                raise ValueError("A parameter can only appear once in groups.")
        else:
            raise ValueError("groups should be a non-negative integer or a list of list of "
                             "torch.Tensor.")
    cls = type(optimizer.__class__.__name__, (optimizer.__class__,),
               dict(_DistributedOptimizer.__dict__))
    return cls(optimizer.param_groups, named_parameters, compression, backward_passes_per_step,
               op, gradient_predivide_factor, groups, sparse_as_dense, process_set, mode,
               bucket_cap_mb, first_bucket_mb)
