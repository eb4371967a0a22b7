"""The engine's step counter and codec state from the first rank (NOTE: [shared codec state] in
codecs/shared.py)."""
import horovod.torch as hvd
import torch

from horovod_ext.codecs.shared import broadcast_shared
from horovod_ext.runtime.same_point import same_point


def take_shared_codec_state(engine):
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
        broadcast_shared(engine.codec, [b.view for b in s.buckets], ps, f"hvd_ext.codec.{s.slot}")
