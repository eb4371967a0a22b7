"""Elastic training with every mode: ``hvd_ext.elastic.TorchState`` is Horovod's
``hvd.elastic.TorchState`` whose commit, restore and sync also carry this plug-in's state.

- ``commit()`` saves the optimizer's ``state_dict()``: the wrapped optimizer's state plus the
  mode's (pending delayed gradients, already reduced; step counters; leader losses and
  overlapped pulls; the EASGD center; gradient statistics).
- ``restore()`` (a rank died) drops whatever was in flight and loads the last commit, so the
  pending gradients are exactly those of the committed step.
- After the job is re-formed, the size-dependent parts follow the new ranks, the agreement check
  runs across the new set of ranks, and ``sync()`` gives every rank rank 0's model and
  optimizer state: a new worker starts with the pending gradients and counters of the others,
  and the averaging modes start from one model again (the leader's pull and the center re-synced).

Use it as Horovod's: ``state = hvd_ext.elastic.TorchState(model, optimizer, epoch=0)`` and a
training function decorated with ``@hvd.elastic.run``.
"""
import copy

import horovod.torch as hvd
from horovod.torch.elastic.state import StateHandler
from horovod.torch.elastic.state import TorchState as _HorovodTorchState
from horovod.torch.functions import broadcast_object

from horovod_ext.optimizer import is_distributed_optimizer


class _ExtOptimizerHandler(StateHandler):
    def __init__(self, optimizer):
        super().__init__(optimizer)
        optimizer.reset_after_resize()  # refuses what cannot follow a resize, before training
        self._saved = copy.deepcopy(optimizer.state_dict())

    def save(self):
        self._saved = copy.deepcopy(self.value.state_dict())

    def restore(self):
        self.value.load_state_dict(self._saved)

    def sync(self):
        self.value.check_agreement()
        state = broadcast_object(self.value.state_dict() if hvd.rank() == 0 else None,
                                 root_rank=0, name="hvd_ext.elastic.optimizer")
        self.value.load_state_dict(state)

    def on_reset(self):
        self.value.reset_after_resize()


class TorchState(_HorovodTorchState):
    """Horovod's TorchState (same arguments); an ``hvd_ext.DistributedOptimizer`` among them is
    committed, restored and synced with its mode's state (see the module docstring)."""

    def __init__(self, model=None, optimizer=None, **kwargs):
        super().__init__(model=model, optimizer=optimizer, **kwargs)
        for name, value in [("optimizer", optimizer), *kwargs.items()]:
            if is_distributed_optimizer(value):  # replace Horovod's handler
                self._handlers[name] = _ExtOptimizerHandler(value)
        self.register_reset_callbacks([h.on_reset for h in self._handlers.values()
                                       if isinstance(h, _ExtOptimizerHandler)])
