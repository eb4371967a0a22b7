"""The optimizer front: ``horovod_ext.DistributedOptimizer``, a drop-in for
``hvd.DistributedOptimizer`` that reduces gradients in buckets launched during backward.

Control flow, as verbs: ``_on_grad_ready`` (autograd hook) -> ``_mark_bucket_ready`` ->
``_launch`` (Horovod ``allreduce_async_`` of the flat bucket) -> ``synchronize`` (wait in launch
order, unpack, rebuild the plan once from the real gradient order) -> the inner ``step``.
"""
import os
import warnings
from collections import deque
from contextlib import contextmanager

import horovod.torch as hvd
import torch
from horovod.common.exceptions import HorovodInternalError
from horovod.torch.functions import broadcast_object
from horovod.torch.mpi_ops import Adasum, Average, Sum, global_process_set

from horovod_ext import _C
from horovod_ext.agreement import check_agreement
from horovod_ext.buckets import Bucket, bucket_caps, plan_buckets, split_groups
from horovod_ext.compression import KERNEL_CASTS, Compression
from horovod_ext.failure import (check_nonfinite, drain, nonfinite_error, nonfinite_names,
                                 stop_all_ranks)
from horovod_ext.modes import GRADIENT_MODES, resolve_mode
from horovod_ext.stats import GradientStats
from horovod_ext.wire import wire_bytes


class _DistributedOptimizer(torch.optim.Optimizer):
    # NOTE: [ring of bucket sets] Gradients live in ``staleness + 1`` sets of buckets (one set in
    # sync mode), all built from one plan. The backward of a step accumulates into set ``_cur``;
    # ``synchronize()`` launches what is left of it, queues it in ``_pending`` and, once more
    # than ``staleness`` sets are queued, waits for the oldest and makes it the one the inner
    # step applies. That set is always ``(_cur + 1) % n_sets``, the next accumulation set, so
    # ``zero_grad()`` never touches a set in flight and ``p.grad`` is a view of one set at a time.

    def __init__(self, params, named_parameters, compression, backward_passes_per_step, op,
                 gradient_predivide_factor, groups, sparse_as_dense, process_set, mode,
                 bucket_cap_mb, first_bucket_mb, stats, nonfinite):
        super(self.__class__, self).__init__(params)
        self.mode = mode
        self.nonfinite = nonfinite
        self.skipped_steps = 0     # inner steps skipped for a non-finite gradient
        self._apply_bad = []       # parameters whose gradient to apply is not finite
        self._hook_error = None    # (parameter name, exception) of a failed backward hook
        self._compression = compression
        self.backward_passes_per_step = backward_passes_per_step
        self.op = op
        self.gradient_predivide_factor = gradient_predivide_factor
        self.sparse_as_dense = sparse_as_dense  # sparse gradients are always reduced densely
        self.process_set = process_set
        self._staleness = getattr(mode, "staleness", 0)
        self._compensation = float(getattr(mode, "compensation", 0.0))
        # NOTE: [gradient statistics] With ``stats``, every bucket carries one extra element.
        # At launch the bucket's local squared norm goes into ``_local[s][bucket]`` (before the
        # in-place allreduce overwrites the gradient); the set's last launch writes their sum
        # into its own extra element, so the allreduce averages it over ranks for free. After
        # the wait, the averaged gradient's norm goes into ``_global[s]`` and the pair is
        # handed to the GradientStats without waiting on the device.
        self.gradient_stats = stats
        if stats is not None:
            stats._bind(process_set.size(), self._staleness)
        self._grad_steps = 0  # gradients launched so far (the step a statistic belongs to)

        names = _parameter_names(self.param_groups, named_parameters)
        # Parameters that get gradients, in registration order; names for messages and plans.
        self._params = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
        self._names = [names[p] for p in self._params]
        self._index = {p: i for i, p in enumerate(self._params)}
        self._cap_bytes, self._first_cap_bytes = bucket_caps(
            bucket_cap_mb, first_bucket_mb, sum(p.numel() * p.element_size() for p in self._params))
        self._passes = [0] * len(self._params)  # backward passes seen this step, per param
        n_sets = self._staleness + 1
        self._sets = [[] for _ in range(n_sets)]      # per set: its buckets
        self._locs = [{} for _ in range(n_sets)]      # per set: param -> (bucket, slot)
        self._set_plan = [None] * n_sets              # the plan each set was built with
        self._set_gen = [0] * n_sets                  # per set: rebuilds so far (in names)
        self._set_step = [0] * n_sets                 # per set: the step its gradient is of
        self._norms = [None] * n_sets                 # per set: [local, global] once reduced
        self._local_parts = [None] * n_sets           # per set: local |g|^2 of each bucket
        self._launched = [[] for _ in range(n_sets)]  # per set: launched buckets, launch order
        self._cur = 0              # the set the next backward accumulates into
        self._pending = deque()    # sets launched, not applied yet, oldest first
        self._apply = None         # the set p.grad shows for the coming inner step, if any
        self._ready_order = []     # param indices in the order gradients became ready (1st step)
        self._rebuilt = groups is not None  # explicit groups are never re-planned
        self._synchronized = False
        self._should_synchronize = True
        self._active = process_set.included()
        self.bytes_sent = 0.0      # by this rank, for every collective launched (see wire.py)

        if groups is not None:
            self._plan = split_groups(groups, self._params)
        else:
            self._plan = self._make_plan(list(reversed(range(len(self._params)))))
        for s in range(n_sets):
            self._install(s)
        self._point_grads(self._cur)
        if self._active:
            for p in self._params:
                p.register_post_accumulate_grad_hook(self._on_grad_ready)

    # ---- plan and state -------------------------------------------------------------------
    def _make_plan(self, order):
        ps = self._params
        return plan_buckets([p.numel() for p in ps], [p.element_size() for p in ps],
                            [(p.dtype, p.device) for p in ps], order, self._cap_bytes,
                            self._first_cap_bytes)

    def _install(self, s):
        """(Re)builds set s from the current plan, keeping every gradient value it holds. The
        first build of the accumulation set takes in the gradients ``p.grad`` held before."""
        comm_dtype = KERNEL_CASTS.get(self._compression)
        old = self._locs[s]
        extra = 0 if self.gradient_stats is None else 1
        buckets = [Bucket(i, [self._params[j] for j in b], comm_dtype, self._compensation > 0,
                          extra) for i, b in enumerate(self._plan)]
        for b in buckets:
            if old:
                with torch.no_grad():
                    _C.pack([old[p][0].views[old[p][1]] for p in b.params], b.flat, b.offsets, 1.0)
            elif s == self._cur:
                b.adopt_grads()
        if self._set_plan[s] is not None:
            self._set_gen[s] += 1
        self._sets[s], self._set_plan[s] = buckets, self._plan
        if extra:
            p0 = self._params[0]
            self._local_parts[s] = torch.zeros(len(buckets), dtype=torch.float32, device=p0.device)
        self._locs[s] = {p: (b, k) for b in buckets for k, p in enumerate(b.params)}

    def _point_grads(self, s):
        """Makes every ``p.grad`` a view of set s (the values of the set left are kept there)."""
        for b in self._sets[s]:
            for p, view in zip(b.params, b.views):
                p.grad = view

    def _rebuild_from_ready_order(self):
        """Once, after the first step: re-plan with the order in which gradients really became
        ready (rank 0's order, so every rank agrees), unused parameters last. Each set is rebuilt
        when it is next free (see _advance)."""
        self._rebuilt = True
        order = broadcast_object(self._ready_order, root_rank=0, process_set=self.process_set)
        seen = set(order)
        order = list(order) + [i for i in reversed(range(len(self._params))) if i not in seen]
        self._plan = self._make_plan(order)

    # ---- backward: hooks -> ready -> launch -------------------------------------------------
    def _on_grad_ready(self, p):
        # NOTE: [hook errors] An exception here would leave this rank's buckets unlaunched and
        # the other ranks waiting for them; it is kept and raised at synchronize()/step(), which
        # first shuts Horovod down so that the other ranks fail too (see failure.stop_all_ranks).
        if self._hook_error is not None:
            return
        try:
            self._grad_ready(p)
        except Exception as e:  # noqa: BLE001 - re-raised at step() with its cause
            self._hook_error = (self._names[self._index[p]], e)

    def _grad_ready(self, p):
        i = self._index[p]
        bucket, slot = self._locs[self._cur][p]
        if bucket.launched or self._passes[i] >= self.backward_passes_per_step:
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
                self._launch(self._cur, bucket)

    def _launch(self, s, bucket):
        """Starts the allreduce of one bucket of set s (its gradients are final for this step and
        every ``p.grad`` is its view: the hooks check their own parameter, synchronize() the rest)."""
        average = self.op == Average
        prescale = 1.0 / self.gradient_predivide_factor if average else 1.0
        postscale = self.gradient_predivide_factor if average else 1.0
        name = f"hvd_ext.grad.{self._set_gen[s]}.{s}.{bucket.index}"
        if self._measured(self._grad_steps):  # see NOTE: [gradient statistics]
            parts = self._local_parts[s]
            _C.sq_norm([bucket.grads], parts[bucket.index:bucket.index + 1])
            if len(self._launched[s]) == len(self._sets[s]) - 1:
                bucket.flat[-1:].copy_(parts.sum())
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
        bucket.launched = True
        self._launched[s].append(bucket)
        sent = bucket.comm if bucket.comm is not None else bucket.flat
        self.bytes_sent += wire_bytes("allreduce", sent.numel() * sent.element_size(),
                                      self.process_set.size())

    def _wait(self, s):
        """Waits for set s's allreduces in launch order and unpacks them (idempotent)."""
        for b in self._launched[s]:
            if b.handle is None:
                continue
            try:
                output = hvd.synchronize(b.handle)
            except HorovodInternalError as e:
                b.handle = None
                raise _another_rank_failed(f"the allreduce of gradient bucket {b.index} (first "
                                           f"parameter {self._names[self._index[b.params[0]]]!r}) "
                                           "did not complete", e) from e
            b.handle = None
            if b.comm is not None:
                scale = self.gradient_predivide_factor / self.process_set.size() \
                    if self.op == Average else 1.0
                _C.unpack(b.comm, [0], [b.flat], scale, False)
            elif output is not b.flat:
                b.flat.copy_(self._compression.decompress(output, b.ctx).view(-1))
        if self._measured(self._set_step[s]) and self._launched[s] and self._norms[s] is None:
            parts = torch.empty(len(self._sets[s]), dtype=torch.float32, device=self._params[0].device)
            for b in self._sets[s]:
                _C.sq_norm([b.grads], parts[b.index:b.index + 1])
            self._norms[s] = torch.stack([self._launched[s][-1].flat[-1].float(), parts.sum()])

    def _drop_in_flight(self):
        """Waits for every launched allreduce, keeping none of the results; one that fails (a
        rank died: elastic restore) is dropped as well."""
        for s in range(len(self._sets)):
            drain(b.handle for b in self._launched[s] if b.handle is not None)
            for b in self._launched[s]:
                b.handle = None

    def _measured(self, step):
        stats = self.gradient_stats
        return stats is not None and step % stats.every == 0

    def _finish(self, s):
        """Set s becomes the gradient to apply: reduced, checked (``nonfinite``), compensated
        for its delay. Every rank holds the same reduced values, so every rank finds the same
        parameters not finite, and skips or raises alike."""
        self._wait(s)
        norms = self._norms[s]  # measured statistics: a finite norm of the whole gradient suffices
        if self.nonfinite == "ignore" or (norms is not None and bool(torch.isfinite(norms[1]))):
            self._apply_bad = []
        else:
            self._apply_bad = nonfinite_names(
                [(b.views, [self._names[self._index[p]] for p in b.params]) for b in self._sets[s]])
        if self._norms[s] is not None:
            self.gradient_stats._push(self._set_step[s], self._norms[s])
            self._norms[s] = None
        for b in self._sets[s]:
            b.launched = False
            b.pending = len(b.params)
            if self._compensation > 0:
                with torch.no_grad():
                    _C.dc_compensate(b.flat, b.params, b.snap, b.offsets, self._compensation)
        self._launched[s].clear()

    def _check_no_backward_in_flight(self, what):
        if self._launched[self._cur]:
            raise AssertionError(f"optimizer.{what}() was called after loss.backward() but "
                                 "before optimizer.step() or optimizer.synchronize(). This is "
                                 "prohibited as it can cause a race condition.")

    # ---- Horovod's optimizer interface ------------------------------------------------------
    def synchronize(self):
        """Launches the buckets that did not become ready during backward (unused parameters
        contribute zeros) and queues this step's gradients. In sync mode it waits for them; in
        delayed mode it waits for the gradients of ``staleness`` steps ago, if there are any.
        Afterwards ``p.grad`` holds the averaged gradient the inner step will apply."""
        if self._hook_error is not None:
            name, error = self._hook_error
            self._hook_error = None
            if isinstance(error, HorovodInternalError):  # Horovod itself stopped (elastic restores)
                raise _another_rank_failed(f"the allreduce of parameter {name!r} could not start",
                                           error) from error
            stop_all_ranks(RuntimeError(
                f"the backward hook of parameter {name!r} raised {type(error).__name__}: {error}. "
                "Horovod was shut down on this rank so that the other ranks stop waiting for its "
                "gradients."), error)
        if not self._active:
            self._synchronized = True
            return
        cur = self._cur
        for b in self._sets[cur]:
            if not b.launched:  # a parameter without gradient this step: its hook never ran
                b.adopt_grads()
                self._launch(cur, b)
            if b.snap is not None:  # the parameters this gradient was computed at
                with torch.no_grad():
                    _C.pack(b.params, b.snap, b.offsets, 1.0)
        self._passes = [0] * len(self._params)
        self._set_step[cur], self._grad_steps = self._grad_steps, self._grad_steps + 1
        self._pending.append(cur)
        self._apply = None
        if len(self._pending) > self._staleness:
            self._apply = self._pending.popleft()
            self._finish(self._apply)
        if not self._rebuilt and self._ready_order:
            self._rebuild_from_ready_order()
        # The next accumulation set: the one just finished, or a free one during warm-up.
        self._cur = (cur + 1) % len(self._sets)
        if self._set_plan[self._cur] != self._plan:
            self._install(self._cur)
        self._point_grads(self._cur)
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
        """Waits for the gradient to apply, then runs the wrapped optimizer's step. In delayed mode
        the first ``staleness`` steps have no gradient to apply yet and return None. ``loss`` is
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
        apply, self._apply = self._apply, None
        if self._staleness and apply is None:
            return None
        if self._skip_bad(apply):
            return None
        return super(self.__class__, self).step(closure)

    def _skip_bad(self, s):
        """Acts on ``nonfinite`` for the set about to be applied: True to skip its inner step."""
        bad, self._apply_bad = self._apply_bad, []
        if not bad:
            return False
        if self.nonfinite == "raise":
            raise nonfinite_error(bad, f"in the averaged gradient of step {self._set_step[s]}, "
                                       "on every rank")
        self.skipped_steps += 1
        return True

    def flush(self):
        """Waits for and applies every gradient still in flight, oldest first, one inner step
        each, and leaves nothing in flight; ``p.grad`` then holds the last one applied. The next
        ``staleness`` steps refill the pipeline. A no-op in sync mode."""
        self._check_no_backward_in_flight("flush")
        while self._pending:
            s = self._pending.popleft()
            self._finish(s)
            self._cur = s
            self._point_grads(s)
            if not self._skip_bad(s):
                super(self.__class__, self).step()

    @contextmanager
    def consensus_params(self):
        """The model to evaluate: the current parameters after ``flush()``."""
        self.flush()
        yield

    def zero_grad(self, set_to_none=True):
        """Zeroes the set of buckets the next backward accumulates into, never one in flight.
        ``p.grad`` stays a view of its bucket even when ``set_to_none=True`` (zeros and None mean
        the same to every torch optimizer step that follows a backward, and keeping the view saves
        a copy per parameter per step)."""
        self._check_no_backward_in_flight("zero_grad")
        for b in self._sets[self._cur]:
            b.flat.zero_()
            for p, view in zip(b.params, b.views):
                if p.grad is not view:
                    p.grad = view

    def _on_reset(self):
        """After Horovod elastic re-forms the job (ranks and size may have changed)."""
        self._active = self.process_set.included()
        if self.gradient_stats is not None:
            self.gradient_stats.ranks = self.process_set.size()

    def set_backward_passes_per_step(self, passes):
        _check_positive_int("backward_passes_per_step", passes)
        self.backward_passes_per_step = passes
        self._passes = [0] * len(self._params)

    def state_dict(self):
        """The wrapped optimizer's state plus, under ``"hvd_ext"``, the bucket plan and the
        gradients still pending (reduced, not applied yet), so a resumed run continues exactly."""
        self._check_no_backward_in_flight("state_dict")
        sd = super(self.__class__, self).state_dict()
        pending = []
        for s in self._pending:
            self._wait(s)
            norms = self._norms[s]
            pending.append({"grads": [self._locs[s][p][0].views[self._locs[s][p][1]].clone()
                                      for p in self._params],
                            "snapshots": [self._snapshot_of(s, p) for p in self._params],
                            "step": self._set_step[s],
                            "norms": None if norms is None else norms.clone()})
        stats = self.gradient_stats
        sd["hvd_ext"] = {"mode": self.mode.name, "staleness": self._staleness,
                         "plan": [list(b) for b in self._plan], "rebuilt": self._rebuilt,
                         "pending": pending, "grad_steps": self._grad_steps,
                         "stats": None if stats is None else stats.state_dict()}
        return sd

    def _snapshot_of(self, s, p):
        b, k = self._locs[s][p]
        if b.snap is None:
            return None
        return b.snap[b.offsets[k]:b.offsets[k] + p.numel()].view_as(p).clone()

    def load_state_dict(self, state_dict):
        """Restores the wrapped optimizer's state and, when present, the pending gradients and
        the bucket plan. Gradients in flight in this process are waited for and replaced."""
        state_dict = dict(state_dict)
        ours = state_dict.pop("hvd_ext", None)
        self._drop_in_flight()
        self._hook_error, self._apply_bad = None, []
        for s in range(len(self._sets)):
            for b in self._sets[s]:
                b.launched, b.pending = False, len(b.params)
            self._launched[s].clear()
            self._norms[s] = None
        self._pending.clear()
        self._apply = None
        self._synchronized = False
        self._should_synchronize = True
        self._passes = [0] * len(self._params)
        super(self.__class__, self).load_state_dict(state_dict)
        if ours is None:
            return
        if ours["staleness"] != self._staleness:
            raise ValueError(f"state_dict was saved with staleness {ours['staleness']} but this "
                             f"optimizer has staleness {self._staleness}")
        self._plan, self._rebuilt = [list(b) for b in ours["plan"]], ours["rebuilt"]
        self._grad_steps = ours.get("grad_steps", 0)
        if self.gradient_stats is not None and ours.get("stats") is not None:
            self.gradient_stats.load_state_dict(ours["stats"])
        for s in range(len(self._sets)):
            self._install(s)
        for s, entry in enumerate(ours["pending"]):
            for p, g, w0 in zip(self._params, entry["grads"], entry["snapshots"]):
                b, k = self._locs[s][p]
                b.views[k].copy_(g)
                if b.snap is not None:
                    b.snap[b.offsets[k]:b.offsets[k] + p.numel()].copy_(w0.view(-1))
            self._set_step[s] = entry.get("step", 0)
            if self.gradient_stats is not None and entry.get("norms") is not None:
                self._norms[s] = entry["norms"].clone()
            self._pending.append(s)
        self._cur = len(ours["pending"]) % len(self._sets)
        self._point_grads(self._cur)


def _another_rank_failed(what, error):
    return HorovodInternalError(f"{what}: another rank failed or exited first, and its error says "
                                f"why. ({error})")


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


def _agree(optimizer, named_parameters, process_set, config):
    """Runs before any local check, so that a rank whose arguments differ raises with the others
    instead of leaving them waiting; names that fail Horovod's rules are compared as such.
    Returns the check's arguments. Under Horovod elastic a worker may be constructed while the
    others train, so the check runs in ``hvd_ext.elastic.TorchState.sync()`` instead."""
    params = [p for g in getattr(optimizer, "param_groups", []) for p in g["params"]]
    try:
        names = _parameter_names(getattr(optimizer, "param_groups", []), named_parameters)
    except (ValueError, TypeError) as e:
        config = dict(config, named_parameters=str(e))
        names = {p: f"#{i}" for i, p in enumerate(params)}
    agreement = (params, names, config, process_set)
    if os.environ.get("HOROVOD_ELASTIC") != "1":
        check_agreement(*agreement)
    return agreement


def _check_stats(stats, mode, op, compression, optimizer, process_set):
    """stats needs the average of >= 2 ranks' float32/float64 gradients, reduced uncompressed."""
    if stats is None:
        return
    if not isinstance(stats, GradientStats):
        raise ValueError(f"stats must be a horovod_ext.GradientStats; got {type(stats).__name__}")
    if not isinstance(mode, GRADIENT_MODES):
        raise ValueError(f"stats needs a gradient-averaging mode (sync, delayed): mode "
                         f"{type(mode).__name__} averages parameters, not gradients")
    if op != Average:
        raise ValueError("stats needs op=Average: the noise scale compares per-rank gradients "
                         "with their average")
    if compression is not Compression.none:
        raise ValueError("stats needs compression=Compression.none: the squared norm rides in "
                         "the reduced buffer and would be rounded to 16 bits")
    if process_set.included() and process_set.size() < 2:
        raise ValueError(f"stats needs >= 2 ranks to compare per-rank and averaged gradients; "
                         f"this process set has {process_set.size()}")
    bad = {p.dtype for g in optimizer.param_groups for p in g["params"]
           if p.dtype not in (torch.float32, torch.float64)}
    if bad:
        raise ValueError(f"stats needs float32 or float64 parameters; got {sorted(map(str, bad))}")


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0; got {value!r}")


def DistributedOptimizer(optimizer, named_parameters=None, compression=Compression.none,
                         backward_passes_per_step=1, op=Average, gradient_predivide_factor=1.0,
                         num_groups=0, groups=None, sparse_as_dense=False,
                         process_set=global_process_set, *, mode="sync", bucket_cap_mb=None,
                         first_bucket_mb=1, stats=None, nonfinite="ignore"):
    """Wraps ``optimizer`` like ``hvd.DistributedOptimizer`` (same arguments, same meaning) and
    returns an instance of a subclass of its class.

    Gradients are gathered in flat buckets in backward order; each bucket's allreduce starts the
    moment its last gradient is accumulated, so communication overlaps the rest of backprop.
    ``bucket_cap_mb`` caps a bucket's size (default None: about 32 buckets for the model, each
    0.25 to 25 MB) and the first bucket holds at most ``first_bucket_mb``. ``mode`` picks the
    synchronisation algorithm: ``"sync"`` (exact, the default), ``Delayed(staleness, compensation)``,
    or a model-averaging mode without gradient allreduce: ``Leader(period, pull, ...)``,
    ``EASGD(period, moving_rate)``, ``LocalSGD(period)``. ``groups``/``num_groups`` replace
    the automatic plan with Horovod's explicit grouping (one bucket per group).
    ``stats=GradientStats(batch_size)`` measures the gradient noise scale for free (see
    ``horovod_ext.stats``); it is then ``optimizer.gradient_stats``.
    ``nonfinite``: what a NaN or inf in the gradient to apply does: ``"ignore"`` (apply it, as
    Horovod does), ``"skip"`` (skip that inner step on every rank, counted in
    ``optimizer.skipped_steps``) or ``"raise"`` (FloatingPointError naming the parameter). In
    the gradient modes it is decided from the averaged gradient, so every rank agrees.

    Every rank must pass the same parameters (names, shapes, dtypes, order) and arguments: one
    small allgather checks it first, and a difference raises ValueError on every rank.
    """
    if named_parameters is not None:
        named_parameters = list(named_parameters)
    agreement = _agree(optimizer, named_parameters, process_set, dict(
        mode=repr(mode), optimizer=type(optimizer).__name__, compression=repr(compression),
        backward_passes_per_step=repr(backward_passes_per_step), op=repr(op),
        gradient_predivide_factor=repr(gradient_predivide_factor), num_groups=repr(num_groups),
        groups=repr(groups if not isinstance(groups, list) else [len(g) for g in groups]),
        sparse_as_dense=repr(sparse_as_dense), bucket_cap_mb=repr(bucket_cap_mb),
        first_bucket_mb=repr(first_bucket_mb), nonfinite=repr(nonfinite),
        stats=repr(stats if not isinstance(stats, GradientStats)
                   else (stats.batch_size, stats.ema, stats.every))))
    mode = resolve_mode(mode)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}")
    _check_positive_int("backward_passes_per_step", backward_passes_per_step)
    _check_positive("gradient_predivide_factor", gradient_predivide_factor)
    if bucket_cap_mb is not None:
        _check_positive("bucket_cap_mb", bucket_cap_mb)
    _check_positive("first_bucket_mb", first_bucket_mb)
    check_nonfinite(nonfinite)
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
    # NOTE: [module of the class] Horovod's broadcast_optimizer_state() recognises a distributed
    # optimizer by its class's __module__ and then initialises the optimizer state with the
    # wrapped optimizer's own step() on zero gradients, without communication. We want exactly
    # that for every mode (a delayed mode would otherwise queue those zeros as a real gradient),
    # so the class reports Horovod's module.
    _check_stats(stats, mode, op, compression, optimizer, process_set)
    if not isinstance(mode, GRADIENT_MODES):
        from horovod_ext.averaging import _AveragingOptimizer
        defaults = dict(compression=(compression, Compression.none),
                        backward_passes_per_step=(backward_passes_per_step, 1), op=(op, Average),
                        gradient_predivide_factor=(gradient_predivide_factor, 1.0),
                        groups=(groups, None), sparse_as_dense=(sparse_as_dense, False))
        for arg, (value, default) in defaults.items():
            if value != default:
                raise ValueError(f"{arg} applies to the gradient allreduce, and mode "
                                 f"{type(mode).__name__} has none; leave it at its default")
        cls = type(optimizer.__class__.__name__, (optimizer.__class__,),
                   dict(_AveragingOptimizer.__dict__,
                        __module__=hvd.DistributedOptimizer.__module__))
        opt = cls(optimizer.param_groups, _parameter_names(optimizer.param_groups,
                                                           named_parameters), process_set, mode,
                  nonfinite)
        opt._agreement = agreement
        return opt
    cls = type(optimizer.__class__.__name__, (optimizer.__class__,),
               dict(_DistributedOptimizer.__dict__, __module__=hvd.DistributedOptimizer.__module__))
    opt = cls(optimizer.param_groups, named_parameters, compression, backward_passes_per_step,
              op, gradient_predivide_factor, groups, sparse_as_dense, process_set, mode,
              bucket_cap_mb, first_bucket_mb, stats, nonfinite)
    opt._agreement = agreement
    return opt
