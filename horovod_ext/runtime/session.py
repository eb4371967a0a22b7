"""Which Horovod session this process is in, so that the optimizer notices every re-initialization.

Horovod elastic re-forms a job by ``hvd.shutdown(); hvd.init()`` inside ``@hvd.elastic.run``,
then calls the reset callbacks of the state object and (unless only hosts were removed) its
``sync()``. A script written for Horovod's optimizer keeps ``hvd.elastic.TorchState``, whose
callbacks do not know of us, so the optimizer cannot rely on being told: it asks at each of its
entry points (``step``, ``synchronize``, ``zero_grad``, ``flush``, ``state_dict``,
``load_state_dict``, ``consensus_params`` and the gradient hooks) whether the session changed,
and then starts over from the state a newly constructed optimizer has (see NOTE: [elastic
reset] in ``horovod_ext/elastic.py``).

NOTE: [session token] Horovod keeps no public counter of its initializations. ``horovod.torch``'s
``init()`` binds a new dict of pending handles (``mpi_ops._handle_map``) every time, before the
core starts: that object is the token. Where a Horovod lacks it, the rank and size stand in
(a re-initialization that keeps both then goes unnoticed; ``reset_after_resize()`` still tells
the optimizer explicitly). A handle of the previous session must never be waited for: Horovod's
reset clears its handle table and numbers new handles from the start again.
"""
from horovod.torch import mpi_ops


def token():
    """An object that is the same (``is``) exactly while Horovod is not re-initialized."""
    handles = getattr(mpi_ops, "_handle_map", None)
    if handles is not None:
        return handles
    return (mpi_ops.rank(), mpi_ops.size()) if mpi_ops.is_initialized() else None


def is_current(seen):
    """Whether ``seen`` (a ``token()``) is the token of the session running now."""
    now = token()
    return now is seen or (isinstance(now, tuple) and now == seen)


class SessionWatch:
    """``changed()`` is True once after each re-initialization since the last call."""

    def __init__(self):
        self._token = token()

    def changed(self):
        if is_current(self._token):
            return False
        self._token = token()
        return True

    def follow(self):
        """The current session is the one seen (after an explicit reset)."""
        self._token = token()
