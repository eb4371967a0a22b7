"""The codec state every rank must hold alike, taken from the first rank.

NOTE: [shared codec state] A codec whose ranks must share state (PowerSGD's Q, and the step it
starts compressing at) takes it from the first rank at the first launch after construction, a
load or a resize: under Horovod's resume recipe only rank 0 loaded a checkpoint, and ranks that
disagreed on the step would run different collectives. Every rank reaches its first launch of a
step with nothing else blocking, then broadcasts in one fixed order, so this cannot deadlock.
Error feedback is each rank's own: a rank that loaded nothing starts it at zero.
"""
import horovod.torch as hvd


def broadcast_shared(codec, views, process_set, prefix):
    """Every view's shared codec tensors (PowerSGD's Q) from the first rank of
    ``process_set``, in the views' order; ``prefix`` names the collectives."""
    root = process_set.ranks[0] if process_set.ranks is not None else 0
    for v in views:
        for i, t in enumerate(codec.shared_tensors(v.state)):
            hvd.broadcast_(t, root_rank=root, process_set=process_set,
                           name=f"{prefix}.{v.index}.{i}")
