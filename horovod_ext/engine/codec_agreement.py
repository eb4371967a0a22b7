"""The codec state every rank must hold alike, taken from the first rank.

NOTE: [codec agreement] A codec whose ranks must share state (PowerSGD's Q, and the step it
starts compressing at) takes it from the first rank at the first launch after construction, a
load or a resize: under Horovod's resume recipe only rank 0 loaded a checkpoint, and ranks that
disagreed on the step would run different collectives. Every rank reaches its first launch of a
step with nothing else blocking, then broadcasts in one fixed order, so this cannot deadlock.
Error feedback is each rank's own: a rank that loaded nothing starts it at zero.
"""
import horovod.torch as hvd
import torch

from horovod_ext.same_point import same_point


def broadcast_shared(codec, buckets, process_set, prefix):
    """Every bucket's shared codec tensors (PowerSGD's Q) from the first rank of
    ``process_set``, in the buckets' order; ``prefix`` names the collectives."""
    root = process_set.ranks[0] if process_set.ranks is not None else 0
    for b in buckets:
        for i, t in enumerate(codec.shared_tensors(b.codec_state)):
            hvd.broadcast_(t, root_rank=root, process_set=process_set,
                           name=f"{prefix}.{b.index}.{i}")


def agree_codec_state(engine):
    """Engine's step counter and every bucket's shared codec tensors from the first rank."""
    ps = engine.settings.process_set
    same_point("the codec state from the first rank, at the first bucket launch since "
               "construction, a load or a resize", ps, bounded=True)
    steps = torch.tensor([engine.grad_steps], dtype=torch.int64)
    hvd.broadcast_(steps, root_rank=ps.ranks[0], name="hvd_ext.codec.step", process_set=ps)
    delta = int(steps.item()) - engine.grad_steps
    engine.grad_steps += delta
    for s in engine._sets:
        s.step += delta
        broadcast_shared(engine.codec, s.buckets, ps, f"hvd_ext.codec.{s.slot}")
