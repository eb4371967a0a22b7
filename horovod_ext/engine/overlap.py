"""The next-forward schedule of ``Sync(overlap_forward=True)``: ``step()`` launches what backward
left and returns; each bucket's parameters get the wrapped optimizer's step for them alone when
the next forward reaches a module that holds one of them (a global forward pre-hook), or when
something reads them all (``synchronize()``, the next ``step()``, ``flush()``, the optimizer's
``state_dict()``, a module's ``state_dict()``/``load_state_dict()``). Buckets go on the wire in
the order that forward needs them (engine/priority.py), so the last layers' backlog crosses
while the first layers compute.

The result equals one full step of the wrapped optimizer for the per-parameter optimizers of
``torch.optim`` (``PER_PARAMETER``): their update of a parameter reads only its own gradient and
state. A parameter read outside the forward of a module that holds it would be read before its
update: when it then gets a gradient with its update still pending, the backward hook says so
(engine's ``_mark_ready``).

Calls go one way: the engine owns a ``NextForward`` (engine/schedule.py) and calls it; it gets the
launcher's ``wait_for`` and the bucket step it runs, never the engine. The hooks below hold the
engine weakly and go through it.
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


def bucket_step(optimizer, inner_step):
    """The wrapped optimizer's step on one bucket's parameters alone, with ``p.grad`` showing
    the reduced gradient (and afterwards what it showed before)."""
    def step(b):
        shown = [p.grad for p in b.params]
        for p, view in zip(b.params, b.views):
            p.grad = view
        keep = {id(p) for p in b.params}
        groups = optimizer.param_groups
        saved = [g["params"] for g in groups]
        try:
            for g in groups:
                g["params"] = [p for p in g["params"] if id(p) in keep]
            optimizer.param_groups = [g for g in groups if g["params"]]
            inner_step()
        finally:
            optimizer.param_groups = groups
            for g, params in zip(groups, saved):
                g["params"] = params
            for p, g in zip(b.params, shown):
                p.grad = g
    return step


def watch_forwards(engine):
    """Every module's forward goes to ``engine.on_forward`` (a global forward pre-hook holding
    the engine weakly, removed once it is gone), and a script that ends right after ``step()``
    still applies, and launches, what is pending; otherwise a rank holding buckets back would
    exit while the others wait for them (atexit; runs before Horovod's own shutdown, registered
    at ``hvd.init()``, earlier: atexit runs last-in first)."""
    ref = weakref.ref(engine)

    def hook(module, args):
        e = ref()
        if e is None:
            handle.remove()
        else:
            e.on_forward(module)
    handle = register_module_forward_pre_hook(hook)
    atexit.register(_finish_at_exit, ref)
    return ref


def _finish_at_exit(ref):
    engine = ref()
    if engine is not None and engine.deferred and hvd.is_initialized():
        engine.finish_deferred()


def finish_through(ref):
    """A module's state_dict hook: applies what the engine ``ref`` holds deferred."""
    def hook(*_):
        engine = ref()
        if engine is not None:
            engine.finish_deferred()
    return hook


class NextForward:
    """Invariants: ``set`` is the closed bucket set whose buckets are not all applied (None when
    nothing is pending); ``_todo`` maps id(bucket) to those of its buckets not applied yet;
    ``_bucket_of[p]`` is p's bucket in ``set``. ``wait_for(s, b)`` is the launcher's,
    ``step(b)`` applies bucket b (bucket_step)."""

    def __init__(self, wait_for, step):
        self._wait_for, self._step = wait_for, step
        self.set, self._todo, self._bucket_of = None, {}, {}
        self.applied_in_forward = 0  # buckets applied by a module's forward pre-hook so far

    def is_pending(self, p):
        b = self._bucket_of.get(p)
        return b is not None and id(b) in self._todo

    def defer(self, s):
        """Closed set s is this step's gradient: applied bucket by bucket from now on."""
        self.set = s
        self._todo = {id(b): b for b in s.buckets}
        self._bucket_of = {p: b for b in s.buckets for p in b.params}

    def on_forward(self, module):
        """Applies the buckets holding ``module``'s own parameters; True when none is left."""
        for p in module._parameters.values():
            b = self._bucket_of.get(p) if p is not None else None
            if b is not None and id(b) in self._todo:
                self._apply(b)
                self.applied_in_forward += 1
        return not self._todo

    def _apply(self, b):
        self._wait_for(self.set, b)
        del self._todo[id(b)]
        self._step(b)

    def finish(self):
        """Applies every bucket still pending, in the next forward's order."""
        for b in sorted(self._todo.values(), key=lambda b: -b.index):
            self._apply(b)

    def take(self):
        """The set, all of it applied or dropped; nothing is pending afterwards."""
        s = self.set
        self.set, self._todo, self._bucket_of = None, {}, {}
        return s
