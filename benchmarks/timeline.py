"""Horovod's timeline read back next to the benchmark's own step marks: per traced step, how
long compute took, how long the step waited and how long an allreduce was on the wire; and a
picture of it (throughput.py --trace)."""
import json
import statistics


def read_timeline(path):
    """Horovod's timeline (chrome trace written by the coordinator) as (t0, ops): t0 its start in
    microseconds since the epoch, ops a list of (tensor name, negotiation start, transfer start,
    transfer end) in microseconds since t0; (0, []) for an empty timeline."""
    with open(path) as f:
        text = f.read().rstrip().rstrip(",")
    if text.lstrip("[").strip() == "":
        return 0, []  # nothing went through Horovod (DDP)
    events = json.loads(text if text.endswith("]") else text + "]")
    t0, names, stack, negotiated, ops = 0, {}, {}, {}, []
    for e in events:
        pid = e.get("pid")
        if e["ph"] == "M" and e["name"] == "process_name":
            t0 = e["args"].get("start_time_since_epoch_in_micros", t0)
            names[pid] = e["args"].get("name")
        elif e["ph"] == "B":
            stack.setdefault(pid, []).append((e["name"], e["ts"]))
        elif e["ph"] == "E" and stack.get(pid):
            name, ts = stack[pid].pop()
            if stack[pid]:
                continue  # a sub-activity (queue, memcpy, the transfer itself)
            if name.startswith("NEGOTIATE"):
                negotiated[pid] = ts
            else:
                ops.append((names.get(pid), negotiated.pop(pid, ts), ts, e["ts"]))
    return t0, ops


def summarize_trace(marks, t0, ops):
    """Per traced step: compute (start to backward end), exposed wait (backward end to step end),
    the time some allreduce was on the wire during the step, and the part of it after backward."""
    rows = []
    for a, b, c in marks:
        spans = sorted((max(s + t0, a), min(e + t0, c)) for _, _, s, e in ops if s + t0 < c and e + t0 > a)
        wire = after = 0.0
        end = a
        for s, e in spans:  # union of the transfer intervals
            s = max(s, end)
            if e > s:
                wire += e - s
                after += max(0.0, e - max(s, b))
                end = e
        rows.append({"compute_ms": (b - a) / 1e3, "wait_ms": (c - b) / 1e3,
                     "wire_ms": wire / 1e3, "wire_after_backward_ms": after / 1e3})
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def plot_timeline(traces, path, title):
    """One row per optimizer: its traced steps (forward + backward light, waiting for the step
    dark) and, below, the allreduces on the wire; time since the first traced step started."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 0.8 + 0.7 * len(traces)))
    for row, (mode, (marks, t0, ops)) in enumerate(traces.items()):
        start, y = marks[0][0], -row
        for a, b, c in marks:
            ax.broken_barh([((a - start) / 1e3, (b - a) / 1e3)], (y, 0.3), color="#9ecae1")
            ax.broken_barh([((b - start) / 1e3, (c - b) / 1e3)], (y, 0.3), color="#08519c")
        spans = [((s + t0 - start) / 1e3, (e - s) / 1e3) for _, _, s, e in ops
                 if s + t0 <= marks[-1][2] and e + t0 >= start]
        ax.broken_barh(spans, (y - 0.35, 0.3), color="#fd8d3c")
    ax.set_yticks([-r + 0.0 for r in range(len(traces))], list(traces))
    ax.set_xlabel("ms (light: forward + backward, dark: step waits; orange: allreduce on the wire)")
    ax.set_title(f"Horovod timeline of traced steps: {title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
