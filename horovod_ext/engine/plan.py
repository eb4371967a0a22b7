"""The bucket plan: which gradients share a flat buffer. Pure functions of sizes, dtypes,
devices, order and caps; the state the plan describes lives in ``bucket.py``/``bucket_set.py``.
"""
MB = 1024 * 1024
# bucket_cap_mb=None: about this many buckets, each within [AUTO_MIN_CAP, AUTO_MAX_CAP] bytes.
AUTO_BUCKETS, AUTO_MIN_CAP, AUTO_MAX_CAP = 32, MB // 4, 25 * MB


def bucket_caps(cap_mb, first_mb, total_bytes):
    """(cap, first cap) in bytes. ``cap_mb=None`` sizes the buckets to the model: its gradient
    bytes over AUTO_BUCKETS, within [AUTO_MIN_CAP, AUTO_MAX_CAP]. A fixed 25 MB cap puts all of
    a small model's gradient in one or two buckets, which start only as backward ends; about 32
    buckets let most of it cross the wire during backward, for few launches. The first bucket
    is never larger than the others (``first_mb=None``: 1 MB)."""
    first_mb = 1 if first_mb is None else first_mb
    if cap_mb is None:
        cap = min(AUTO_MAX_CAP, max(AUTO_MIN_CAP, total_bytes // AUTO_BUCKETS))
    else:
        cap = int(cap_mb * MB)
    return cap, min(cap, int(first_mb * MB))


def plan_buckets(numels, element_sizes, keys, order, cap_bytes, first_cap_bytes):
    """Groups tensors into buckets.

    numels, element_sizes, keys: per tensor (keys: anything hashable that must match within a
    bucket, e.g. (dtype, device)). order: tensor indices in the order their gradients become
    ready (reverse registration order before the first backward). A key's first bucket closes
    once it holds first_cap_bytes, later ones at cap_bytes, so a tensor larger than a cap closes
    the bucket it joins (with the smaller tensors ready before it). Returns a list of buckets (lists of tensor indices in ready order),
    sorted by the position of their first tensor in ``order``.
    """
    if sorted(order) != list(range(len(numels))):
        raise ValueError("order must be a permutation of the tensor indices")
    open_buckets = {}   # key -> [indices, bytes]: the bucket still accepting tensors of that key
    closed_count = {}   # key -> number of buckets of that key already closed
    buckets = []
    for i in order:
        key = keys[i]
        indices, size = open_buckets.setdefault(key, [[], 0])
        indices.append(i)
        size += numels[i] * element_sizes[i]
        open_buckets[key][1] = size
        cap = first_cap_bytes if closed_count.get(key, 0) == 0 else cap_bytes
        if size >= cap:
            buckets.append(indices)
            closed_count[key] = closed_count.get(key, 0) + 1
            del open_buckets[key]
    buckets.extend(indices for indices, _ in open_buckets.values() if indices)
    position = {i: pos for pos, i in enumerate(order)}
    return sorted(buckets, key=lambda b: position[b[0]])


def split_groups(groups, params):
    """Horovod's explicit grouping as a bucket plan: ``groups`` is a number of groups to split the
    parameters into, or a list of lists of parameters (parameters in no list get a bucket each).
    Returns buckets as lists of indices into ``params``; a group mixing dtypes or devices is
    split by them."""
    index = {id(p): i for i, p in enumerate(params)}
    if isinstance(groups, int):
        n = len(params)
        size, extra = divmod(n, groups)
        bounds = [k * size + min(k, extra) for k in range(groups + 1)]
        raw = [list(range(bounds[k], bounds[k + 1])) for k in range(groups)]
    else:
        raw, seen = [], set()
        for group in groups:
            raw.append([index[id(p)] for p in group if id(p) in index])
            seen.update(raw[-1])
        raw += [[i] for i in range(len(params)) if i not in seen]
    buckets = []
    for group in raw:
        by_key = {}
        for i in group:
            by_key.setdefault((params[i].dtype, params[i].device), []).append(i)
        buckets += list(by_key.values())
    return [b for b in buckets if b]
