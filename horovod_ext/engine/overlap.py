"""Sync with next-forward overlap (``Sync(overlap_forward=True)``): ``step()`` launches what
backward left and returns; each bucket's parameters get the wrapped optimizer's step for them
alone when the next forward reaches a module that holds one of them (a global forward pre-hook),
or when something reads them all (``synchronize()``, the next ``step()``, ``flush()``, the
optimizer's ``state_dict()``, a module's ``state_dict()``/``load_state_dict()``). Buckets go on
the wire in the order that forward needs them (engine/priority.py), so the last layers' backlog
crosses while the first layers compute.

The result equals one full step of the wrapped optimizer for the per-parameter optimizers of
``torch.optim`` (``PER_PARAMETER``): their update of a parameter reads only its own gradient and
state. A parameter read outside the forward of a module that holds it would be read before its
update: when it then gets a gradient with its update still pending, the backward hook says so
(engine's ``_mark_ready``).
"""
import atexit
import weakref

import horovod.torch as hvd
import torch
from torch.nn.modules.module import register_module_forward_pre_hook

PER_PARAMETER = tuple(getattr(torch.optim, n) for n in (
    "SGD", "Adam", "AdamW", "Adagrad", "Adamax", "RMSprop", "Rprop", "NAdam", "RAdam", "ASGD",
    "Adadelta"))


def steps_per_parameter(optimizer):
    """Whether ``optimizer``'s step is one of PER_PARAMETER's own (not overridden)."""
    return any(type(optimizer).step is cls.step for cls in PER_PARAMETER)


def _finish_through(ref):
    def hook(*_):
        overlap = ref()
        if overlap is not None:
            overlap.finish()
    return hook


def _finish_at_exit(ref):
    """A script that ends right after ``step()`` still applies, and launches, what is pending;
    otherwise a rank holding buckets back would exit while the others wait for them. Runs before
    Horovod's own shutdown (registered at ``hvd.init()``, earlier; atexit runs last-in first)."""
    overlap = ref()
    if overlap is not None and overlap._set is not None and hvd.is_initialized():
        overlap.finish()


def _forward_through(ref):
    """The global forward pre-hook, holding the ForwardOverlap weakly (removed once it is gone)."""
    def hook(module, args):
        overlap = ref()
        if overlap is None:
            handle.remove()
        else:
            overlap.on_forward(module)
    handle = register_module_forward_pre_hook(hook)
    return handle


class ForwardOverlap:
    """Invariants: ``_set`` is the closed bucket set whose buckets are not all applied (None when
    nothing is pending); ``_todo`` maps id(bucket) to those of its buckets not applied yet;
    ``_bucket_of[p]`` is p's bucket in ``_set``. The forward pre-hook is global and always on, so
    the modules of the first forward already have the state_dict hooks when the first step
    defers."""

    def __init__(self, engine, optimizer, inner_step):
        self.engine = engine
        self.optimizer = optimizer
        self._inner_step = inner_step
        self._set, self._todo, self._bucket_of = None, {}, {}
        self._watched = weakref.WeakSet()  # modules given our state_dict hooks
        self._ref = weakref.ref(self)
        _forward_through(self._ref)
        atexit.register(_finish_at_exit, self._ref)
        self.applied_in_forward = 0  # buckets applied by a module's forward pre-hook so far

    def is_pending(self, p):
        b = self._bucket_of.get(p)
        return b is not None and id(b) in self._todo

    def defer(self, s):
        """Closed set s is this step's gradient: applied bucket by bucket from now on."""
        self._set = s
        self._todo = {id(b): b for b in s.buckets}
        self._bucket_of = {p: b for b in s.buckets for p in b.params}
        s.point_grads(keep=self.engine.sparse.keep)  # p.grad shows the step's gradient

    def on_forward(self, module):
        if module not in self._watched:
            self._watched.add(module)
            module.register_state_dict_pre_hook(_finish_through(self._ref))
            module.register_load_state_dict_pre_hook(_finish_through(self._ref))
        if self._set is None:
            return
        for p in module._parameters.values():
            b = self._bucket_of.get(p) if p is not None else None
            if b is not None and id(b) in self._todo:
                self._apply(b)
                self.applied_in_forward += 1
        if self._todo:
            self.engine.launcher.pump(self._set)
        else:
            self._release()

    def _apply(self, b):
        """Waits for bucket b and runs the wrapped optimizer's step on its parameters alone,
        with ``p.grad`` showing the reduced gradient (and afterwards what it showed before)."""
        self.engine.launcher.wait_for(self._set, b)
        del self._todo[id(b)]
        shown = [p.grad for p in b.params]
        for p, view in zip(b.params, b.views):
            p.grad = view
        keep = {id(p) for p in b.params}
        groups = self.optimizer.param_groups
        saved = [g["params"] for g in groups]
        try:
            for g in groups:
                g["params"] = [p for p in g["params"] if id(p) in keep]
            self.optimizer.param_groups = [g for g in groups if g["params"]]
            self._inner_step()
        finally:
            self.optimizer.param_groups = groups
            for g, params in zip(groups, saved):
                g["params"] = params
            for p, g in zip(b.params, shown):
                p.grad = g

    def finish(self):
        """Applies every bucket still pending, in the next forward's order."""
        if self._set is None:
            return
        for b in sorted(self._todo.values(), key=lambda b: -b.index):
            self._apply(b)
        self._release()

    def drop(self):
        """Forgets the pending set unapplied (a state is loaded over it)."""
        if self._set is not None:
            self._todo.clear()
            self._release(applied=False)

    def _release(self, applied=True):
        s = self._set
        self._set, self._bucket_of = None, {}
        self.engine.release(s, applied)
