"""The step-time tables of the compression runs for docs_tables.py: per optimizer its library,
step time, bytes, and speedups over the fastest peer and DDP's compression hooks."""
import json

from benchmarks.ratios import cell as interval, speedup


def library(mode):
    """Which library an optimizer of the benchmarks comes from: a peer's, or horovod_ext."""
    from benchmarks import peers
    name = mode.removesuffix("@tuned")
    return peers.library(name) if name in peers.REGISTRY else "horovod_ext"


def model_size(model):
    """A benchmark model's parameters in words (7.4M)."""
    from benchmarks.models import MODELS
    return f"{sum(p.numel() for p in MODELS[model]().parameters()) / 1e6:.1f}M parameters"


def compression(results, name):
    """Per optimizer of one throughput run: its library, step time, bytes per step, and the
    speedup over the fastest peer and over DDP's fp16 and PowerSGD hooks where those are not
    the fastest peer (paired rounds, 95% intervals)."""
    path = results / "compression" / f"{name}.json"
    run = json.loads(path.read_text())
    c, by = run["config"], {r["mode"]: r for r in run["results"]}
    best = run["best_peer"]
    others = [p for p in ("ddp-powersgd", "ddp-fp16") if p in by and p != best]
    lines = [f"{c['model']} ({model_size(c['model'])}), {c['np']} ranks on one {c['cpus']}-core "
             f"machine, one emulated {c['link']} link shared by the ranks (no latency), "
             f"{c['rounds']} rounds of {c['steps']} steps, no GPU; "
             f"`{path.relative_to(results.parent.parent)}`. Speedups are ratios of median step times over paired "
             "rounds, 95% bootstrap interval over rounds.", "",
             "| " + " | ".join(["optimizer", "library", "step (ms)", "MB sent per step",
                                f"x fastest peer ({best})"] + [f"x {p}" for p in others]) + " |",
             "|---" * (5 + len(others)) + "|"]
    for r in run["results"]:
        cells = [interval(*speedup(by[p]["round_ms"], r["round_ms"])) for p in others]
        sent = "not counted" if r["bytes_per_step"] is None else \
            f"{r['bytes_per_step'] / 1e6:.1f}"
        lines.append("| " + " | ".join([r["mode"], library(r["mode"]), f"{r['step_ms']:.0f}", sent,
                                        interval(r["vs_best_peer"], r["vs_best_peer_ci95"]),
                                        *cells]) + " |")
    return "\n".join(lines)
