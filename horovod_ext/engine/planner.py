"""Which bucket plan the engine's sets are built from, and when it changes."""
from horovod.torch.functions import broadcast_object

from horovod_ext.engine.plan import bucket_caps, plan_buckets, split_groups
from horovod_ext.runtime import log
from horovod_ext.runtime.same_point import same_point


class Planner:
    """At construction (and after a load): Horovod's ``groups``, or reverse registration order
    until the first step shows the real one. Once, after that first step: the order in which
    gradients became ready on rank 0 (so every rank agrees), unused parameters last, and the
    parameters whose gradients are gathered sparse left out (the sparse lane reduces those).
    Explicit groups are never re-planned. ``plan`` lists buckets as lists of parameter indices.
    """

    def __init__(self, params, settings):
        self.params = params
        self.settings = settings
        self.cap, self.first_cap = bucket_caps(
            settings.bucket_cap_mb, settings.first_bucket_mb,
            sum(p.numel() * p.element_size() for p in params))
        self._start_caps = (self.cap, self.first_cap)
        self._shown = None  # the plan last logged
        self.start()

    def start(self):
        """Back to the construction-time plan."""
        self.rebuilt = self.settings.groups is not None
        self._order = None     # the ready order the plan was rebuilt from (first rank's)
        self.ready_order = []  # parameter indices in the order they became ready (first step)
        if self.settings.groups is not None:
            self.plan = split_groups(self.settings.groups, self.params)
            why = "the groups given"
        else:
            self.plan = self._make(list(reversed(range(len(self.params)))))
            why = "reverse registration order, until the first step shows the real one"
        if self.plan != self._shown:  # the engine starts over at construction
            self._shown = self.plan
            log.debug_plan(self.plan, self.params, self.settings.name_of, why)

    def restore_caps(self):
        """The construction-time caps again (the engine's restart, then ``start()``)."""
        self.cap, self.first_cap = self._start_caps

    def note_ready(self, i):
        """Parameter i's gradient became ready for the first time this step."""
        if not self.rebuilt:
            self.ready_order.append(i)

    @property
    def due(self):
        return not self.rebuilt and bool(self.ready_order)

    def rebuild(self, gathered):
        """Re-plans from rank 0's ready order. ``gathered``: {parameter index: sparse_dim} of the
        sparse gradients this rank gathers; returns rank 0's, which every rank then uses."""
        self.rebuilt = True
        same_point("the bucket plan from the first rank's gradient order, after the first step "
                   "since construction, a load or a resize", self.settings.process_set,
                   bounded=True)
        order, gathered = broadcast_object((self.ready_order, gathered), root_rank=0,
                                           process_set=self.settings.process_set)
        seen = set(order)
        order = list(order) + [i for i in reversed(range(len(self.params))) if i not in seen]
        self._order = [i for i in order if i not in gathered]
        self.plan = self._make(self._order)
        log.debug_plan(self.plan, self.params, self.settings.name_of,
                       "the order gradients became ready on the first rank")
        return gathered

    def set_caps(self, cap, first_cap):
        """New caps (bytes) for the plan rebuilt after the first step (the same order on every
        rank, so every rank gets the same plan). Returns whether the plan changed."""
        if self.settings.groups is not None:
            return False
        self.cap, self.first_cap = cap, min(cap, first_cap)
        if self._order is None:  # the rebuild after the next step uses them
            return False
        plan = self._make(self._order)
        if plan == self.plan:
            return False
        self.plan = plan
        log.debug_plan(plan, self.params, self.settings.name_of,
                       f"caps {cap / 2**20:.3g} MB, first {self.first_cap / 2**20:.3g} MB")
        return True

    def _make(self, order):
        ps = [self.params[i] for i in order]
        plan = plan_buckets([p.numel() for p in ps], [p.element_size() for p in ps],
                            [(p.dtype, p.device) for p in ps], list(range(len(ps))),
                            self.cap, self.first_cap)
        return [[order[j] for j in b] for b in plan]
