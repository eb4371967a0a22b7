"""What every mode is: a configuration (a small frozen dataclass the user passes as ``mode=``)
that checks the optimizer's arguments it depends on and builds a mode object; the mode object
implements ``Mode``, the interface the optimizer front delegates every call to."""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

STATE_KEY = "hvd_ext"  # where a mode's state lives in the optimizer's state_dict()


@dataclass(frozen=True)
class Settings:
    """The ``DistributedOptimizer`` arguments, validated by the front, that modes work with."""

    name_of: dict                 # parameter -> name (Horovod's rules: unique, same on all ranks)
    compression: Any              # what the user passed
    codec: Any                    # the codec it names (codecs/__init__.py)
    backward_passes_per_step: int
    op: Any
    gradient_predivide_factor: float
    groups: Any                   # None, a number of groups or lists of parameters
    sparse_as_dense: bool
    process_set: Any
    bucket_cap_mb: Any
    first_bucket_mb: Any          # None: 1 MB, tuned
    stats: Any                    # a GradientStats or None
    nonfinite: str
    tune: bool = True             # the gradient modes' online tuner (engine/tuner.py)


class ModeConfig:
    """Base of the mode configurations. ``name`` is the mode's name for ``mode="..."``."""

    name: Optional[str] = None

    def check(self, settings, optimizer):
        """Raises ValueError when an argument of the optimizer does not fit this mode."""

    def build(self, optimizer, inner, settings):
        """The mode object for ``optimizer`` (see ``Mode``)."""
        raise NotImplementedError


class Mode:
    """The interface every mode implements. ``optimizer`` is the user-facing optimizer (its
    ``param_groups``); ``inner`` is the wrapped optimizer's own methods bound to it (``step``,
    ``zero_grad``, ``state_dict``, ``load_state_dict``). The front's ``step()`` is
    ``before_step`` -> the inner step when it says so -> ``after_step``."""

    backward_passes_per_step = 1  # the gradient modes count passes; the others take one
    gradient_stats = None         # a GradientStats where the mode feeds one
    synchronized = False          # synchronize() ran since the last step() (gradient modes)

    def __init__(self, config, optimizer, inner, settings):
        self.config = config
        self.optimizer = optimizer
        self.inner = inner
        self.settings = settings
        self.skipped_steps = 0  # inner steps skipped for a non-finite gradient

    @property
    def bytes_sent(self):
        """Bytes this rank sent for every collective launched so far (see wire.py)."""
        raise NotImplementedError

    def buffers(self):
        """The tensors this mode keeps between steps (for memory accounting)."""
        return []

    def synchronize(self):
        """Horovod's ``synchronize()``: waits until ``p.grad`` holds what the step applies."""

    def before_step(self, closure, synchronize):
        """Returns (take the inner step?, the closure to pass it, a result already computed)."""
        return True, closure, None

    def after_step(self, loss):
        """After the inner step (taken or not); ``loss`` is the step's loss, if known."""

    def flush(self, apply=None):
        """Applies whatever is still pending, leaving nothing in flight (``apply``: see the
        front's ``flush``)."""

    @contextmanager
    def consensus_params(self):
        """Loads the parameters a user should evaluate for the duration of the block."""
        self.flush()
        yield

    def zero_grad(self, set_to_none):
        self.inner.zero_grad(set_to_none)

    def set_backward_passes_per_step(self, passes):
        raise ValueError(f"backward_passes_per_step applies to the gradient allreduce, and mode "
                         f"{type(self.config).__name__} has none")

    def state(self):
        """This mode's part of ``state_dict()`` (under STATE_KEY)."""
        return {"mode": self.config.name}

    def before_load(self):
        """Before the wrapped optimizer's state is loaded: drop what is in flight."""

    def load_state(self, saved):
        """Restores what ``state()`` returned."""

    def state_dict(self):
        ours = self.state()
        sd = self.inner.state_dict()
        sd[STATE_KEY] = ours
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        ours = state_dict.pop(STATE_KEY, None)
        self.before_load()
        self.inner.load_state_dict(state_dict)
        if ours is not None:
            self.load_state(ours)

    def check_elastic(self):
        """Raises ValueError when this mode cannot follow an elastic resize."""

    def on_reset(self):
        """After Horovod was re-initialized (an elastic reset): ranks and size may have
        changed, nothing of the old session may be waited for, and every rank must reach the
        state a newly constructed optimizer of the new job would have (see NOTE: [elastic
        reset] in elastic.py)."""
