"""What a codec sees of one bucket: a public view, so that a codec never reads the gradient
engine's ``Bucket`` and DiLoCo's pseudo-gradients cross the wire the same way.

The one offset layout of every flat buffer is here too: tensors side by side in the given order,
tensor k at element ``offsets[k]``. Gradient buckets and the averaging modes' parameter buffers
both use it, so a kernel's ``offsets`` argument always means the same thing.
"""
import torch


def flat_offsets(numels):
    """(offsets, total): element offset of each tensor in a flat buffer, and its length."""
    offsets, total = [], 0
    for n in numels:
        offsets.append(total)
        total += n
    return offsets, total


class BucketView:
    """One bucket as a codec sees it. ``flat``: the tensors side by side (``views[k]`` is tensor
    k's slice shaped ``shapes[k]``, at element ``offsets[k]``; trailing elements past ``numel``
    travel with them); ``names``: the parameters' names; ``index``: the bucket's number, the
    same on every rank; ``state``: what the codec keeps for it (``Codec.new_state``)."""

    def __init__(self, index, flat, shapes, names=None):
        self.index = index
        self.flat = flat
        self.shapes = [torch.Size(s) for s in shapes]
        self.names = list(names) if names is not None else [f"{index}.{k}"
                                                            for k in range(len(self.shapes))]
        self.offsets, self.numel = flat_offsets(s.numel() for s in self.shapes)
        self.views = [flat[o:o + s.numel()].view(s) for o, s in zip(self.offsets, self.shapes)]
        self.state = None

    @property
    def dtype(self):
        return self.flat.dtype

    @property
    def device(self):
        return self.flat.device

    def numel_of(self, k):
        return self.shapes[k].numel()

    def scratch(self):
        """A view of the same layout over a copy of ``flat`` (its own state still to make)."""
        return BucketView(self.index, self.flat.clone(), self.shapes, self.names)
