"""The online tuner's table for docs_tables.py: what tuning cost and chose per cell, from the
``tuning`` entry of stored throughput runs."""
import json


def load(path):
    """The runs of a sweep.json (a list) or of one run's JSON."""
    data = json.loads(path.read_text())
    return data if isinstance(data, list) else [data]


def tuning_cost(paths):
    """Per cell and tuned mode: the steps and seconds tuning took, their cost in steady steps,
    and the settings chosen (bucket cap, first bucket, cycle time, fusion threshold)."""
    lines = ["Per cell and mode: the steps the tuner took, their wall time (from the end of the "
             "first), what that time costs beyond the same steps at the mode's steady step "
             "(negative: the tuning steps were faster), and the settings it chose.", "",
             "| rate | model | mode | steps | seconds | cost beyond steady steps | steady step | "
             "chose: schedule | bucket cap | first bucket | cycle | fusion |", "|---" * 12 + "|"]
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
                    f"{t['seconds'] - (t['steps'] - 1) * step / 1e3:+.1f} s | {step:.0f} ms | "
                    f"{s.get('schedule', 'step')} | {s['bucket_cap_mb']:.3g} MB | {s['first_bucket_mb']:.3g} MB | "
                    f"{s['cycle_ms']:g} ms | {s['fusion_mb']:g} MB |")
    return "\n".join(lines)


def autotune(path):
    """Horovod's autotuner as a peer (its own job of the cell): its converged step beside the
    others', and what it had scored after its untimed steps."""
    r = json.loads(path.read_text())
    t = r["tuning"]["horovod-autotune"]
    by = {x["mode"]: x for x in r["results"]}
    last = t["last_logged"] or {}
    lines = [f"`{r['config']['json']}`: {r['config']['model']}, {r['config']['np']} ranks, "
             f"{r['config'].get('link', '')}; horovod-autotune ran {t['warmup_steps']} untimed "
             f"steps ({', '.join(f'{k}={v}' for k, v in t['environment'].items())}) and scored "
             f"{t['settings_scored']} settings; its last logged: "
             + (", ".join(f"{k} {v}" for k, v in last.items()) or "none") + ".", "",
             "| optimizer | median step | vs best peer | tuned in |", "|---|---|---|---|"]
    grid = r.get("horovod_tuned", {}).get("grid_ms", {})
    tuned_in = {"horovod-autotune": f"{t['warmup_steps']} untimed steps ({t['settings_scored']} settings scored)",
                "horovod-tuned": f"a grid of {len(grid)} settings before the rounds"}
    for mode, x in by.items():
        lo, hi = x["vs_best_peer_ci95"]
        own = r["tuning"].get(mode, {})
        lines.append(f"| {mode} | {x['step_ms']:.0f} ms | {x['vs_best_peer']:.2f}x "
                     f"[{lo:.2f}, {hi:.2f}] | " + (tuned_in.get(mode) or (
                         f"{own['steps']} steps ({own['seconds']:.0f} s)" if "steps" in own
                         else "-")) + " |")
    return "\n".join(lines)


def repeated_cells(paths, mode="sync"):
    """Markdown: every stored run of a cell (rate, model, ranks) that more than one of ``paths``
    timed, with ``mode``'s ratios in each; an interval covers the rounds of its own run only."""
    from benchmarks.ratios import cell
    runs = {}
    for path in paths:
        for r in load(path):
            key = (r.get("rate"), r.get("model"), r.get("np"))
            row = next((x for x in r["results"] if x["mode"] == mode), None)
            if row is not None:
                runs.setdefault(key, []).append((path, r["best_peer"], row))
    lines = [f"| rate | model | ranks | run | {mode} step | x Horovod | x fastest peer of the run |",
             "|---" * 7 + "|"]
    for (rate, model, np_), rows in sorted(runs.items(), key=str):
        if len(rows) < 2:
            continue
        for path, peer, row in rows:
            lines.append(f"| {rate} | {model} | {np_} | `{path.parent.parent.name}/{path.parent.name}` | "
                         f"{row['step_ms']:.0f} ms | {cell(row['vs_horovod'], row['vs_horovod_ci95'])} | "
                         f"{cell(row['vs_best_peer'], row['vs_best_peer_ci95'])} ({peer}) |")
    return "\n".join(lines)
