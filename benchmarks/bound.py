"""The best step time any exact synchronous schedule could reach for a model, from a traced step
of it without communication and the measured wire time per byte (throughput.py).

An exact synchronous optimizer applies step t's averaged gradient to a parameter before step
t + 1's forward reads it. Its best schedule, assumed here: gradients go on the wire the moment
backward produces them, in pieces of CHUNK bytes, always the piece the next forward needs first
(preemptive priority); each parameter's update costs nothing and happens the moment its last
piece arrives; step t + 1's forward stalls only where it reaches a parameter whose update has not
arrived. Simulated over several steps, the steady-state step time is the bound. It is never
below max(T_compute, T_allreduce), and reaches it only when the wire can carry every gradient
during the compute that does not depend on it.

What it leaves out makes it lower, never higher, so no exact optimizer can beat it but by noise:
per-collective latency (the wire speed comes from one allreduce of every gradient at once), the
CPU that communication takes from compute (T_compute is measured without communication), the
optimizer's own work on the wire's critical path. throughput.py feeds it the fastest round of
T_compute and of T_allreduce, not their medians: on a shared machine a median compute round
can be slower than the compute inside another method's fastest steps.
"""
import heapq
import time

from benchmarks.models import loss_fn

CHUNK = 256 * 1024


def profile(model, data, target, repeats=3):
    """Median over ``repeats`` untimed-then-timed steps (no communication): forward time F,
    backward time B, and per parameter its bytes, the offset within the forward at which its
    module's forward starts (the first time it can be read; 0 for one read outside any module
    of its own) and the offset within backward at which its gradient is ready."""
    params = [p for p in model.parameters() if p.requires_grad]
    owner = {p: m for m in model.modules() for p in m.parameters(recurse=False)}
    first_use, ready, clock = {}, {}, {}

    def pre_hook(module, _):
        first_use.setdefault(module, time.perf_counter() - clock["fw"])

    def grad_hook(p):
        ready.setdefault(p, time.perf_counter() - clock["bw"])
    hooks = [m.register_forward_pre_hook(pre_hook) for m in set(owner.values())]
    hooks += [p.register_post_accumulate_grad_hook(grad_hook) for p in params]
    runs = []
    try:
        for _ in range(repeats + 1):
            first_use.clear()
            ready.clear()
            model.zero_grad()
            clock["fw"] = time.perf_counter()
            loss = loss_fn(model(data), target)
            clock["bw"] = time.perf_counter()
            loss.backward()
            end = time.perf_counter()
            runs.append((clock["bw"] - clock["fw"], end - clock["bw"],
                         [(p.numel() * p.element_size(),
                           first_use.get(owner.get(p), 0.0), ready.get(p, end - clock["bw"]))
                          for p in params]))
    finally:
        for h in hooks:
            h.remove()
    runs = sorted(runs[1:], key=lambda r: r[0] + r[1])
    return runs[len(runs) // 2]


def exact_sync_bound(prof, seconds_per_byte, other=0.0, steps=6):
    """The steady-state step time (seconds) of the best exact synchronous schedule (see the
    module docstring) for ``prof`` (from ``profile``) on a wire moving a byte of gradient in
    ``seconds_per_byte`` (T_allreduce / bytes of all gradients); ``other``: compute per step
    besides forward and backward (the optimizer's step, zero_grad), which the wire overlaps."""
    forward, backward, params = prof
    order = sorted(range(len(params)), key=lambda k: params[k][1])
    rank = {k: r for r, k in enumerate(order)}  # priority: the order the forward reads them
    arrived = [0.0] * len(params)   # when step t - 1's update of each parameter arrived
    start, wire_free, starts = 0.0, 0.0, []
    for _ in range(steps):
        stall = 0.0
        for k in order:  # the forward stalls where it reaches an update still on the wire
            stall = max(stall, arrived[k] - (start + params[k][1]))
        bw_start = start + stall + forward
        pieces = sorted((bw_start + params[k][2], rank[k], k, min(CHUNK, params[k][0] - off))
                        for k in range(len(params)) for off in range(0, params[k][0], CHUNK))
        queue, i = [], 0  # released pieces, a heap by (priority, release order)
        while i < len(pieces) or queue:
            if not queue and pieces[i][0] > wire_free:
                wire_free = pieces[i][0]
            while i < len(pieces) and pieces[i][0] <= wire_free:
                heapq.heappush(queue, (pieces[i][1], i, pieces[i]))
                i += 1
            _, _, k, size = heapq.heappop(queue)[2]
            wire_free += size * seconds_per_byte
            arrived[k] = wire_free
        starts.append(start)
        start = bw_start + backward + other
    half = steps // 2
    return (starts[-1] - starts[half]) / (steps - 1 - half)


def measured_bound(model, data, target, compute_s, allreduce_s):
    """exact_sync_bound for ``model`` with the wire speed of a measured allreduce of all its
    gradients taking ``allreduce_s`` and a whole step without communication taking
    ``compute_s``; also returns the profile's F and B."""
    forward, backward, params = profile(model, data, target)
    total = sum(size for size, _, _ in params)
    # The profile's hooks slow the step it times; where forward + backward come out longer than
    # the fastest whole step, its times are scaled down to fit it (a bound must not assume a
    # slower compute than was measured).
    scale = min(1.0, compute_s / (forward + backward))
    prof = (forward * scale, backward * scale,
            [(size, first * scale, ready * scale) for size, first, ready in params])
    other = max(0.0, compute_s - prof[0] - prof[1])
    return exact_sync_bound(prof, allreduce_s / total, other), prof[0], prof[1]
