"""The one offset layout of every flat buffer: tensors side by side in the given order, tensor k
at element ``offsets[k]``. Gradient buckets and the averaging modes' parameter buffers both use
it, so a kernel's ``offsets`` argument always means the same thing."""


def flat_offsets(numels):
    """(offsets, total): element offset of each tensor in a flat buffer, and its length."""
    offsets, total = [], 0
    for n in numels:
        offsets.append(total)
        total += n
    return offsets, total
