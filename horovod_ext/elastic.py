"""Elastic training with every mode, whichever state object the script keeps.

NOTE: [elastic reset] Horovod elastic re-forms a job by re-initializing Horovod inside
``@hvd.elastic.run``; the ranks that were there and the ones that join must then hold the same
optimizer state before the optimizer's next collective, or they submit different collectives
and wait on each other forever. Two things see to it:

- The optimizer notices every re-initialization by itself, at its next entry (session.py), and
  every rank starts over from what a newly constructed optimizer has (reset everywhere): the
  construction-time bucket plan (agreed from the first rank after the next step), the schedule,
  the online tuner from its first step, the codec's state from zero (PowerSGD's error feedback
  at zero, its Q from the shared seed), and, in the averaging modes, the step counter and shared
  state taken from the first rank at the next step. Gradients already reduced and not applied
  (delayed mode) are kept; an exchange still on the wire is dropped and said in the log.
- The first use of horovod_ext's API (``hvd_ext.DistributedOptimizer``, ...) puts this
  module's state handler first in Horovod's handler registry, so Horovod's own ``hvd.elastic.TorchState`` (and ``hvd_ext.elastic.TorchState``, the same
  class under our name) commits, restores and syncs an ``hvd_ext.DistributedOptimizer`` with its
  mode's state: ``commit()`` saves ``state_dict()`` (the wrapped optimizer's state plus the
  mode's: pending delayed gradients, already reduced; step counters; leaders and overlapped
  pulls; the EASGD center; DiLoCo's outer parameters and momentum; gradient statistics);
  ``restore()`` (a rank died) drops what was in flight and loads the last commit; ``sync()``
  checks that every rank wraps the same parameters with the same arguments, then gives every
  rank the first rank's state (agreed from the first rank) and resets as above.

When only hosts were removed Horovod skips ``sync()``; the ranks left all committed the same
step, so their states agree already. With a state object that does not carry the optimizer
(``hvd.elastic.ObjectState``), the averaging modes still agree from the first rank at their
next step; a delayed mode's pending gradients stay each rank's own.
"""
import copy

import horovod.torch as hvd
from horovod.torch.elastic import state as horovod_state
from horovod.torch.elastic.state import StateHandler
from horovod.torch.functions import broadcast_object

from horovod_ext.optimizer import is_distributed_optimizer


class _ExtOptimizerHandler(StateHandler):
    def __init__(self, optimizer):
        super().__init__(optimizer)
        optimizer._mode_object.check_elastic()  # refuses what cannot follow a resize, up front
        self._saved = copy.deepcopy(optimizer.state_dict())

    def save(self):
        self._saved = copy.deepcopy(self.value.state_dict())

    def restore(self):
        self.value.load_state_dict(self._saved)

    def sync(self):
        self.value.check_same_setup()
        state = broadcast_object(self.value.state_dict() if hvd.rank() == 0 else None,
                                 root_rank=0, name="hvd_ext.elastic.optimizer")
        self.value.load_state_dict(state)
        self.value.reset_after_resize()  # the first rank's codec state is not the others'


class _Kind(type):
    def __instancecheck__(cls, obj):
        return is_distributed_optimizer(obj)


class DistributedOptimizerKind(metaclass=_Kind):
    """``isinstance(x, DistributedOptimizerKind)``: x was returned by
    ``hvd_ext.DistributedOptimizer`` (its class is made at run time from the user's)."""


def _register_handler():
    registry = list(horovod_state.get_handler_registry())
    if not any(handler is _ExtOptimizerHandler for _, handler in registry):
        horovod_state.set_handler_registry([(DistributedOptimizerKind, _ExtOptimizerHandler)]
                                           + registry)


_register_handler()

# Horovod's class, which now carries the optimizer's mode state (see the module docstring).
TorchState = horovod_state.TorchState
