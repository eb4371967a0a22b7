"""Which mode and codec reach a loss first on this model and link: the advisor's predictions.

Step time (from a probe's trace, ``horovod_ext.advisor.probing``), per candidate, with C the measured
forward + backward + optimizer step and K its codec's measured arithmetic plus the engine's
copies of the gradients into its buckets and back:
- gradient sync with a codec: C + K + E, E the wire time left after backward when the
  codec's collectives are launched as the engine launches them (each bucket when its last
  gradient is ready: the measured offsets, replayed on the link);
- delayed (staleness k >= 1): O + the optimizer step + K, O the time of one forward and backward
  with the exchange of all buckets on the wire at once behind it (measured: compute and
  collectives share the cores, so the overlap is what the machine gives, not max(C, wire));
- a period of H local steps (local SGD, DiLoCo): the candidate's own step time, timed by the
  probe over whole periods with its real rounds (``timed_rounds``: what latency, the codec's
  stages and the cores do to an overlap is in it); for a method the probe did not time
  (``extra``, or a trace without them), L + (A + W + the copies) / H, L a local step
  measured back to back with the next (forward, backward, optimizer step), W a round's
  collectives for all parameters at once in the rounds' wire format (float32, 4-bit, top-k) and
  A its codec's arithmetic (the outer step's own is not counted); with F fragments whose
  exchanges each overlap tau local steps (Streaming DiLoCo), only what is left of each
  fragment's exchange after tau local steps waits (the arithmetic does not overlap): L + (A +
  F max(0, (W + copies) / F - tau L)) / H.
Steps to a loss, as a factor over exact sync's: 1 for sync; for staleness k, 1 + k / M with
M = B_crit / B steps (lr ~ 1/(M + k), the advisor page), B the global batch, B_crit ~ B_noise
over the statistics' latest quarter (``stats.recent_noise_scale``); for the others (float16
included: its rounding changes the math), the factor measured on the text task
(``measured_steps.json``, generated from the stored time-to-loss grid). The time to a loss
relative to sync is the product. The recommendation is the candidate with the least, but sync
when it is within 5% of it (a prediction is not closer than that).
"""
import json
import math
import os
from typing import Any, Dict, Optional, Sequence, Tuple

from horovod_ext import methods
from horovod_ext.stats import recent_noise_scale

# candidate -> its method in the catalog (horovod_ext/methods.py); the candidates' own names are
# the keys of measured_steps.json and of the stored time-to-loss runs.
CANDIDATES = {
    "sync": "sync",
    "sync-fp16": "sync+fp16",
    "int8": "sync+int8",
    "powersgd": "sync+powersgd-r4",
    "delayed": "delayed-k1",
    "delayed-fp16": "delayed-k1+fp16",
    "diloco-H8": "diloco-H8-o1.0-m0.5",
    "diloco-H32": "diloco-H32-o1.0-m0.5",
    "localsgd-H32": "localsgd-H32",
}
# the outer rounds' settings of the stored grid, each under its catalog name: periods 8 to 128,
# overlapped by a step or a quarter period (two fragments, mix 0.5), float32, 4-bit or top-k
CANDIDATES.update((n, n) for n in (
    "localsgd-H8", "localsgd-H128", "diloco-H8-o1.0-m0.5-f2-t1-a0.5",
    "diloco-H32-o1.0-m0.5-f2-t1-a0.5", "diloco-H32-o1.0-m0.5-f2-t1-a0.5+int4",
    "diloco-H32-o1.0-m0.5-f2-t1-a0.5+topk-d0.05-b4", "diloco-H16-o1.0-m0.5-f2-t4-a0.5+int4",
    "diloco-H32-o1.0-m0.5-f2-t8-a0.5", "diloco-H32-o1.0-m0.5-f2-t8-a0.5+int4",
    "diloco-H32-o1.0-m0.0-f2-t8-a0.5+int4", "diloco-H128-o1.0-m0.5-f2-t32-a0.5",
    "diloco-H128-o1.0-m0.5-f2-t32-a0.5+int4"))
EXACT = "sync"  # Horovod's average, to the bit as hvd.DistributedOptimizer
EXACT_MARGIN = 1.05  # sync within 5% of the fastest is recommended instead
HOW = {name: methods.spelled(m) for name, m in CANDIDATES.items()}  # what each is, in the API


def shape(name: str) -> Tuple[str, str, int, int]:
    """Candidate ``name``'s (a candidate or any method of the catalog: how it exchanges: sync,
    delayed or periodic; wire format of the probe's trace; period H; staleness k)."""
    m = methods.parse(CANDIDATES.get(name, name))
    s = dict(m.mode_settings)
    return ("periodic" if "period" in s else m.mode, m.codec or "fp32", s.get("period", 1),
            s.get("staleness", 0))


def rounds(name: str) -> Tuple[int, int]:
    """(fragments, overlap) of a periodic candidate's outer rounds ((1, 0) for local SGD)."""
    s = dict(methods.parse(CANDIDATES.get(name, name)).mode_settings)
    return s.get("fragments", 1), s.get("overlap", 0)


def round_format(name: str) -> str:
    """The wire format of a periodic candidate's rounds: its codec as the catalog writes it
    (``int4``, ``topk-d0.05-b4``), ``fp32`` without one."""
    return methods.parse(CANDIDATES.get(name, name)).name.partition("+")[2] or "fp32"


def round_codecs() -> Dict[str, Any]:
    """Wire format -> the ``compression=`` of every periodic candidate's rounds (None for
    float32): what the probe sends a round with."""
    return {round_format(n): methods.parse(m).kwargs().get("compression")
            for n, m in CANDIDATES.items() if shape(n)[0] == "periodic"}


def optimizer_kwargs(name: str) -> Dict[str, Any]:
    """The ``mode`` (and ``compression``) to give ``hvd_ext.DistributedOptimizer`` for
    candidate ``name`` (as HOW writes them)."""
    if name not in CANDIDATES:
        raise ValueError(f"unknown candidate {name!r}; known: {', '.join(CANDIDATES)}")
    return methods.parse(CANDIDATES[name]).kwargs()


MEASURED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "measured_steps.json")


def step_ms(trace: Dict[str, Any], name: str) -> float:
    """Predicted milliseconds per step of candidate ``name`` (see the module docstring)."""
    how, fmt, period, _ = shape(name)
    compute = trace["compute_ms"]
    fb, opt = compute["forward_backward"], compute["optimizer_step"]
    if how == "periodic" and name in trace.get("periodic_ms", {}):
        return trace["periodic_ms"][name]  # timed by the probe with its own rounds
    if how == "periodic":
        fmt = round_format(name)
        if fmt not in trace["wire_ms"]:
            return math.nan  # a trace without this format's round
        local, (fragments, overlap) = compute["local_step"], rounds(name)
        per_round = (trace["wire_ms"][fmt] + compute["pack_unpack"]) / fragments
        arithmetic = trace.get("round_codec_ms", {}).get(fmt, 0.0)
        return local + (arithmetic + fragments * max(0.0, per_round - overlap * local)) / period
    codec = trace["codec_ms"][fmt] + compute["pack_unpack"]
    if how == "delayed":
        return trace["overlapped_ms"][fmt] + opt + codec
    return fb + opt + codec + trace["exposed_ms"][fmt]


def measured_factors(path: str = MEASURED) -> Dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def steps_factor(name: str, trace: Dict[str, Any], critical_batch: Optional[float],
                 measured: Dict[str, Any]):
    """(factor over exact sync's steps to a loss, what it rests on)."""
    k = shape(name)[3]
    if name == EXACT:
        return 1.0, "exact"
    if k and critical_batch is not None and math.isfinite(critical_batch):
        m = critical_batch / (trace["ranks"] * trace["batch_size"])
        return 1 + k / m, f"staleness {k}, M = B_crit/B = {m:.3g} steps"
    if name in measured["factors"]:
        return measured["factors"][name], "measured on the text task"
    return math.nan, "unknown"


def recommendation(trace: Dict[str, Any], stats: Any = None,
                   measured: Optional[Dict[str, Any]] = None,
                   extra: Sequence[str] = ()) -> Dict[str, Any]:
    """Per candidate: predicted step time, steps factor, time to a loss relative to sync; and
    the candidate with the least. ``stats``: a GradientStats or its JSON (default: the trace's
    own, from the probe's few steps). ``extra``: methods of the catalog to predict beside the
    candidates (their wire format must be in the trace: a codec the probe measured)."""
    measured = measured or measured_factors()
    if stats is not None and not isinstance(stats, dict):
        stats = stats.to_json()
    stats = stats or trace.get("stats")
    crit = recent_noise_scale(stats["history"]) if stats and stats.get("history") else None
    sync_ms = step_ms(trace, "sync")
    rows = {}
    for name in [*CANDIDATES, *extra]:
        ms = step_ms(trace, name)
        factor, basis = steps_factor(name, trace, crit, measured)
        rows[name] = {"step_ms": ms, "steps_factor": factor, "steps_basis": basis,
                      "time_vs_sync": factor * ms / sync_ms,
                      "how": HOW.get(name) or methods.spelled(name)}
    best = min((n for n in rows if math.isfinite(rows[n]["time_vs_sync"])),
               key=lambda n: rows[n]["time_vs_sync"])
    if rows[EXACT]["time_vs_sync"] <= EXACT_MARGIN * rows[best]["time_vs_sync"]:
        best = EXACT  # within the margin, keep the math exact
    return {"critical_batch": crit, "global_batch": trace["ranks"] * trace["batch_size"],
            "rows": rows, "best": best, "reason": _reason(best, rows, trace)}


def _reason(best, rows, trace):
    r, s = rows[best], rows["sync"]
    compute = trace["compute_ms"]["forward_backward"] + trace["compute_ms"]["optimizer_step"]
    if best == EXACT:
        return (f"{best}: exact; the wire adds {r['step_ms'] - compute:.1f} ms to {compute:.1f} "
                f"ms of compute, and no method that changes the math is predicted more than "
                f"{EXACT_MARGIN - 1:.0%} sooner to the same loss")
    return (f"{best}: {1 / r['time_vs_sync']:.2f}x sooner to the same loss than sync "
            f"(step {r['step_ms']:.1f} ms against {s['step_ms']:.1f}, steps x{r['steps_factor']:.2f} "
            f"{r['steps_basis']})")


def report(rec: Dict[str, Any]) -> str:
    crit = rec["critical_batch"]
    w = max(map(len, rec["rows"]))
    lines = [f"global batch {rec['global_batch']}, critical batch ~ recent B_noise = "
             f"{'unknown' if crit is None else format(crit, '.4g')}",
             f"{'candidate':{w}s} {'step ms':>8s} {'steps x':>8s} {'time x':>7s}  steps rest on",
             ]
    order = sorted(rec["rows"].items(), key=lambda kv: (not math.isfinite(kv[1]["time_vs_sync"]),
                                                       kv[1]["time_vs_sync"]))
    for name, r in order:
        lines.append(f"{name:{w}s} {r['step_ms']:8.1f} {r['steps_factor']:8.2f} "
                     f"{r['time_vs_sync']:7.2f}  {r['steps_basis']}")
    best = rec["rows"][rec["best"]]
    lines.append(f"recommended: {best['how']}  -- {rec['reason']}")
    if best["steps_basis"] == "measured on the text task":
        lines.append(f"  its steps factor was measured on the text task, not on this model: "
                     f"check it on yours (time to a loss), or keep {HOW[EXACT]}, exact")
    return "\n".join(lines)
