"""Tables of the online tuner's runs for docs_tables.py: what tuning cost and chose per cell, and
how Horovod's own autotuner compares, from the ``tuning`` entry of stored throughput runs."""
import json


def load(path):
    """The runs of a sweep.json (a list) or of one run's JSON."""
    data = json.loads(path.read_text())
    return data if isinstance(data, list) else [data]


def tuning_cost(paths):
    """Per cell and tuned mode: the steps and seconds tuning took, their cost in steady steps,
    and the settings chosen (bucket cap, first bucket, cycle time, fusion threshold)."""
    lines = ["Per cell and mode: steps the tuner took, their wall time, that time in steady-state "
             "steps of the mode (what tuning cost beyond running those steps at the chosen "
             "speed), and the settings it chose.", "",
             "| rate | model | mode | steps | seconds | in steady steps | steady step | chose: "
             "bucket cap | first bucket | cycle | fusion |", "|---" * 11 + "|"]
    for path in paths:
        for r in load(path):
            c = r.get("config", {})
            by = {x["mode"]: x for x in r["results"]}
            for mode, t in r.get("tuning", {}).items():
                if "chosen" not in t or mode not in by:
                    continue
                s, step = t["chosen"], by[mode]["step_ms"]
                lines.append(
                    f"| {r.get('rate') or c.get('link')} | {r.get('model') or c['model']} | "
                    f"{mode} | {t['steps']} | {t['seconds']:.1f} s | "
                    f"{t['seconds'] * 1e3 / step:.1f} | {step:.0f} ms | "
                    f"{s['bucket_cap_mb']:.3g} MB | {s['first_bucket_mb']:.3g} MB | "
                    f"{s['cycle_ms']:g} ms | {s['fusion_mb']:g} MB |")
    return "\n".join(lines)


def autotune(paths):
    """Horovod's autotuner (its own job) against the main job's fastest peer and our sync."""
    from ratios import cell
    lines = ["| rate | model | horovod-autotune step | vs best peer | sync (tuned) vs best peer "
             "| settings it scored in its warm-up | last logged: cycle, fusion |",
             "|---" * 7 + "|"]
    for path in paths:
        for r in load(path):
            by = {x["mode"]: x for x in r["results"]}
            a, t = by.get("horovod-autotune"), r.get("tuning", {}).get("horovod-autotune")
            if a is None or t is None:
                continue
            last = t["last_logged"] or {}
            sync = by.get("sync")
            lines.append(
                f"| {r.get('rate') or r['config'].get('link')} | "
                f"{r.get('model') or r['config']['model']} | {a['step_ms']:.0f} ms | "
                f"{cell(a['vs_best_peer'], a['vs_best_peer_ci95'])} | "
                f"{cell(sync['vs_best_peer'], sync['vs_best_peer_ci95']) if sync else ''} | "
                f"{t['settings_scored']} in {t['warmup_steps']} steps | "
                f"{last.get('cycle_time_ms', '?')} ms, {last.get('tensor_fusion_threshold', '?')}"
                f" MB |")
    return "\n".join(lines)
