"""Tables in the README and the docs pages generated from stored results (docs/results/*.json),
so every number a reader sees comes from a stored run. Each table sits between
``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` in any page (one table may appear in
several); this script rewrites what is between them, and fails on a marker it does not know or a
table that appears nowhere.

    python -m benchmarks.docs_tables            rewrite README.md and docs/*.md
    python -m benchmarks.docs_tables --check    exit 1 when a page differs from the results
"""
import argparse
import json
import re
import sys
from pathlib import Path

from benchmarks import (advisor_tables, compression_tables, docs_values, ttl_families, ttl_report,
                        tuning_tables)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"


def interval(ratio, ci):
    return f"{ratio:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def kernels_cpu():
    """Per operator and parameter list: bandwidth, of one large copy's, and over the fastest torch
    equivalent (named), with 95% intervals over interleaved repetitions."""
    run = json.loads((RESULTS / "kernels_cpu.json").read_text())
    c = run["config"]
    lines = [f"{c['device']}, {c['threads']} threads, {c['cpu_isa']} kernels, torch {c['torch']}, "
             f"{c['repeats']} interleaved repetitions; `docs/results/kernels_cpu.json`.", "",
             "| op | parameters | GB/s | of one large copy | over the fastest torch equivalent |",
             "|---|---|---|---|---|"]
    for res in run["results"]:
        for r in res["rows"]:
            if r["impl"] == "ours":
                lines.append(f"| {r['op']} | {res['params']} | {r['gb_per_s']:.1f} | "
                             f"{interval(r['of_copy'], r['of_copy_ci95'])} | "
                             f"{interval(r['vs_torch'], r['vs_torch_ci95'])} x "
                             f"({r['fastest_torch']}) |")
    return "\n".join(lines)


def link_check():
    """The emulated links with latency as measured: round trip against twice the delay, TCP
    throughput against the rate, the delay line's CPU (benchmarks/link_check.py)."""
    path = RESULTS / "link_check.json"
    run = json.loads(path.read_text())
    lines = [f"`{path.relative_to(ROOT)}`, {run['config']['provenance']['cores']}-core machine, "
             "idle.", "", "| rate | one way (set) | round trip (2 x set) | TCP throughput | "
             "delay line CPU (of a core) |", "|---|---|---|---|---|"]
    for c in run["cells"]:
        lines.append(f"| {c['rate']} | {c['delay_ms']:g} ms | {c['round_trip_ms']:.1f} ms "
                     f"({c['round_trip_ms'] / (2 * c['delay_ms']) - 1:+.0%}) | "
                     f"{c['throughput_mbit']:.0f} Mbit/s | {c['delay_line_cpu']:.0%} |"
                     if c["delay_ms"] >= 1 else
                     f"| {c['rate']} | none | {c['round_trip_ms']:.1f} ms | "
                     f"{c['throughput_mbit']:.0f} Mbit/s | {c['delay_line_cpu']:.0%} |")
    return "\n".join(lines)


def text_methods(filename):
    """Per method of a text experiment (benchmarks/science/diloco_text.py): the learning rate
    chosen on validation, the validation loss of each seed and its mean against sync's, the test
    loss, the bytes each rank sent and the largest step's."""
    from benchmarks.labels import label
    path = RESULTS / filename
    run = json.loads(path.read_text())
    sync = {r["seed"]: r["val"] for r in run["methods"]["sync"]["runs"]}
    lrs = run["lrs"]
    chosen = (f"learning rate chosen from {lrs} on validation (seed 0)" if len(lrs) > 1
              else f"learning rate {lrs[0]} for every method")
    lines = [f"{run['ranks']} ranks, {run['steps']} steps, batch {run['batch']} per rank, "
             f"{run.get('hidden_layers', 1)} hidden layer(s), AdamW inside every method, {chosen}; "
             f"`{path.relative_to(ROOT)}`.", "",
             "| method | lr | validation loss (seeds) | mean vs sync's on the same seeds | "
             "test (seed 0) | MB sent per rank | largest step |", "|---|---|---|---|---|---|---|"]
    for name, m in run["methods"].items():
        vals = [r["val"] for r in m["runs"]]
        mean, first = sum(vals) / len(vals), m["runs"][0]
        base = sum(sync[r["seed"]] for r in m["runs"]) / len(vals)
        counted = first["bytes"] is not None
        lines.append(f"| {label(name)} | {m['lr']} | {', '.join(f'{v:.3f}' for v in vals)} | "
                     f"{100 * (mean / base - 1):+.1f}% | {first['test']:.3f} | "
                     + (f"{first['bytes'] / 1e6:.1f} | {first['peak_step_bytes'] / 1e3:.0f} kB |"
                        if counted else "not counted | |"))
    return "\n".join(lines)


def throughput_cells(pattern, rate=True, sweep_cols=False):
    """One row per stored throughput run (files matching ``pattern`` under docs/results, or a
    sweep.json list): its cell, the exact-sync bound, tuned Horovod's setting and, per optimizer,
    its median step with the speedup over the fastest peer (95% interval over rounds)."""
    from benchmarks.ratios import cell
    runs = []
    for path in sorted(RESULTS.glob(pattern)):
        data = json.loads(path.read_text())
        runs += data if isinstance(data, list) else [dict(data, path=path)]
    modes = list(dict.fromkeys(x["mode"] for r in runs for x in r["results"]))
    head = (["rate"] if rate else []) + ["model", "ranks", "T_compute", "T_allreduce",
                                         "exact-sync bound",
                                         "headroom" if sweep_cols else "tuned (fusion, cycle)"]
    lines = [f"`docs/results/{pattern}`; each cell: median step, speedup over the fastest peer "
             "[95% bootstrap interval over rounds]" + (", efficiency against the exact-sync "
                                                       "bound" if sweep_cols else "") + ".", "",
             "| " + " | ".join(head + modes) + " |", "|---" * (len(head) + len(modes)) + "|"]
    for r in runs:
        c = r.get("config", {})
        rate_of = r.get("rate") or c.get("link") or \
            re.search(r"\d+[mg]bit", r["path"].stem).group(0)
        t = r.get("horovod_tuned") or {}
        by = {x["mode"]: x for x in r["results"]}
        tuned = (f"{by[r['best_peer']]['step_ms'] / r['sync_bound_ms']:.2f}x" if sweep_cols else
                 f"{t['fusion_mb']} MB, {t['cycle_ms']:g} ms" if t else "")
        cells = [(f"{by[m]['step_ms']:.0f} ms, {cell(by[m]['vs_best_peer'], by[m]['vs_best_peer_ci95'])}"
                  + (f", eff {by[m]['sync_efficiency']:.2f}" if sweep_cols else ""))
                 if m in by else "" for m in modes]
        row = ([rate_of] if rate else []) + [r.get("model") or c["model"],
                                             str(r.get("np") or c["np"]),
                                             f"{r['compute_ms']:.0f} ms", f"{r['allreduce_ms']:.0f} ms",
                                             f"{r['sync_bound_ms']:.0f} ms", tuned]
        lines.append("| " + " | ".join(row + cells) + " |")
    return "\n".join(lines)


def delayed_throughput():
    """The delayed-mode runs at 1 Gbit/s: per ranks x batch, compute and allreduce times and
    each optimizer's median step, its ratio to Horovod's and its efficiency."""
    names = {"horovod": "Horovod", "sync": "sync", "delayed": "delayed k=1",
             "delayed2": "delayed k=2"}
    lines = ["`docs/results/delayed_1gbit_np*_bs*.json`; step (x Horovod, efficiency "
             "max(T_compute, T_allreduce) / step).", "",
             "| ranks x batch | T_compute | T_allreduce | " + " | ".join(names.values()) + " |",
             "|---" * (3 + len(names)) + "|"]
    runs = [json.loads(p.read_text()) for p in RESULTS.glob("delayed_1gbit_np*_bs*.json")]
    for r in sorted(runs, key=lambda r: (r["config"]["np"], r["config"]["batch_size"])):
        by = {x["mode"]: x for x in r["results"]}
        cells = [f"{by[m]['step_ms']:.0f} ms" + ("" if m == "horovod" else
                 f" ({by[m]['vs_horovod']:.2f}x, eff {by[m]['efficiency']:.2f})") for m in names]
        lines.append(f"| {r['config']['np']} x {r['config']['batch_size']} | "
                     f"{r['compute_ms']:.0f} ms | {r['allreduce_ms']:.0f} ms | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def delayed_convergence():
    """Final test accuracy per configuration, both optimizers, mean over initialisations; a run
    that diverged (final accuracy below 20%) is marked, not averaged in silently."""
    runs = {m: json.loads((RESULTS / f"delayed_convergence_{m}.json").read_text())
            for m in ("m0", "m09")}
    head = [f"SGD{' momentum ' + str(r['config']['momentum']) if r['config']['momentum'] else ''}, "
            f"lr {r['config']['lr']}" for r in runs.values()]
    lines = ["`docs/results/delayed_convergence_m0.json`, `delayed_convergence_m09.json`; final "
             "test accuracy, mean over the initialisations.", "",
             "| config | " + " | ".join(head) + " |", "|---" * (1 + len(head)) + "|"]

    def shown(entry):
        accs = [run["final_test_acc"] for run in entry["runs"]]
        bad = sum(a < 0.2 for a in accs)
        mean = f"{100 * sum(accs) / len(accs):.1f}%"
        return mean if not bad else f"{mean} ({bad} of {len(accs)} diverged)"

    for config in runs["m0"]["results"]:
        lines.append(f"| {config} | " + " | ".join(shown(r["results"][config])
                                                  for r in runs.values()) + " |")
    return "\n".join(lines)


def averaging_mnist():
    """Final test accuracy, bytes per step (and as a fraction of sync's) and wall-clock."""
    run = json.loads((RESULTS / "averaging_mnist.json").read_text())
    sync = run["results"]["sync"]["bytes_per_step"]
    lines = ["`docs/results/averaging_mnist.json`.", "",
             "| mode | final test accuracy | bytes sent per rank per step | training wall-clock |",
             "|---|---|---|---|"]
    for mode, r in run["results"].items():
        lines.append(f"| {mode} | {100 * r['acc'][-1]:.1f}% | {r['bytes_per_step'] / 1e3:.1f} kB "
                     f"({r['bytes_per_step'] / sync:.3g}) | {r['seconds'][-1]:.1f} s |")
    return "\n".join(lines)


def soak():
    """Per mode, from the end of the warm-up to the last step: RSS and the growth of what could
    leak."""
    run = json.loads((RESULTS / "soak.json").read_text())
    c = run["config"]
    lines = [f"`docs/results/soak.json`: growth over {c['steps']} steps after a {c['warmup']}-step "
             "warm-up, rank 0.", "",
             "| mode | RSS (MiB) | growth | fds | handles | buffers | objects |",
             "|---|---|---|---|---|---|---|"]
    for mode, r in run["results"].items():
        a, b = r["samples"][0], r["samples"][-1]  # the first sample ends the warm-up
        lines.append(f"| {mode} | {a['rss_mb']:.1f} -> {b['rss_mb']:.1f} | "
                     f"{100 * (b['rss_mb'] / a['rss_mb'] - 1):+.2f}% | "
                     + " | ".join(f"{b[k] - a[k]:+d}" if b[k] != a[k] else "0"
                                  for k in ("fds", "handles", "buffer_bytes", "objects")) + " |")
    return "\n".join(lines)


def traced(name):
    """Per optimizer of a traced throughput run: median step, and per traced step (medians) the
    forward + backward, the wait in step(), and the time collectives were on the wire."""
    path = RESULTS / "compression" / f"{name}.json"
    run = json.loads(path.read_text())
    cap = run["config"].get("bucket_cap_mb")
    lines = [f"`{path.relative_to(ROOT)}` ({run['config']['model']}, {run['config']['np']} ranks, "
             f"{run['config']['link']}, " + (f"buckets of up to {cap:g} MB" if cap else
                                             "the default bucket plan")
             + "): medians over the traced steps.", "",
             "| optimizer | median step | forward + backward | waiting in step() | "
             "collectives on the wire | of it after backward |", "|---|---|---|---|---|---|"]
    for r in run["results"]:
        t = r["trace"]
        wire = (f"{t['wire_ms']:.0f} ms | {t['wire_after_backward_ms']:.0f} ms"
                if t["wire_ms"] else "not in Horovod's timeline | ")
        lines.append(f"| {r['mode']} | {r['step_ms']:.0f} ms | {t['compute_ms']:.0f} ms | "
                     f"{t['wait_ms']:.0f} ms | {wire} |")
    return "\n".join(lines)


# the stored time-to-loss links: rate, and one-way delay where it has one
TTL_CELLS = ("10gbit", "1gbit", "100mbit", "25mbit", "100mbit_20ms", "1gbit_5ms")


def _cells():
    return [json.loads((RESULTS / "time_to_loss" / f"{c}.json").read_text()) for c in TTL_CELLS]
TABLES = {"kernels_cpu": kernels_cpu,
          "compression_trace": lambda: traced("lm_1gbit_trace"),
          "compression_trace_cap100": lambda: traced("lm_1gbit_trace_cap100"),
          "delayed_throughput": delayed_throughput,
          "delayed_convergence": delayed_convergence,
          "averaging_mnist": averaging_mnist,
          "soak": soak,
          "link_check": link_check,
          "overlap_sweep": lambda: throughput_cells("overlap/sweep/sweep.json", sweep_cols=True),
          "overlap_cost": lambda: tuning_tables.tuning_cost([RESULTS / "overlap/sweep/sweep.json"]),
          "compression_text": lambda: text_methods("compression_text.json"),
          "diloco_text": lambda: text_methods("diloco_text.json"),
          "diloco_text_4096": lambda: text_methods("diloco_text_4096.json"),
          "diloco_fragments": lambda: text_methods("diloco_fragments.json"),
          "compression_lm_1gbit": lambda: compression_tables.compression(RESULTS, "lm_1gbit"),
          "compression_lm_300mbit": lambda: compression_tables.compression(RESULTS, "lm_300mbit"),
          "tuner_sweep": lambda: throughput_cells("tuner/sweep/sweep.json", sweep_cols=True),
          "autotune": lambda: tuning_tables.autotune(RESULTS / "tuner/autotune_1gbit_lm.json"),
          "tuner_cost": lambda: tuning_tables.tuning_cost([RESULTS / "tuner/sweep/sweep.json"]),
          "repeated_cells": lambda: tuning_tables.repeated_cells(
              [RESULTS / "tuner/sweep/sweep.json", RESULTS / "overlap/sweep/sweep.json"]),
          **advisor_tables.TABLES,
          "time_to_loss_which": lambda: ttl_report.which_method(_cells()),
          "time_to_loss_summary": lambda: ttl_report.summary(_cells()),
          "ttl_rounds": lambda: ttl_families.rounds_table(_cells()),
          "ttl_rounds_loss": lambda: ttl_families.loss_table(json.loads(
              (RESULTS / "time_to_loss" / "train.json").read_text())),
          "time_to_loss_advice": lambda: ttl_report.advice(
              _cells(), [f"docs/results/time_to_loss/{c}.json" for c in TTL_CELLS]),
          **{f"time_to_loss_{cell}": (lambda cell=cell: ttl_report.table(json.loads(
              (RESULTS / "time_to_loss" / f"{cell}.json").read_text())))
             for cell in TTL_CELLS}}


pages = docs_values.pages


def render(text):
    """``text`` with each of its tables and inline values (docs_values.py) regenerated."""
    for name in re.findall(r"<!-- table:([\w-]+) -->", text):
        if name not in TABLES:
            raise SystemExit(f"unknown table {name!r}; known: {', '.join(TABLES)}")
        pattern = re.compile(rf"(<!-- table:{name} -->\n).*?(<!-- /table:{name} -->)", re.S)
        text = pattern.sub(lambda m: m.group(1) + TABLES[name]() + "\n" + m.group(2), text)
    return docs_values.render(text)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = p.parse_args()
    shown = set()
    for page in pages():
        old = page.read_text()
        shown.update(re.findall(r"<!-- table:([\w-]+) -->", old))
        shown.update(re.findall(r"<!--v:([\w.-]+)-->", old))
        new = render(old)
        if args.check and new != old:
            sys.exit(f"{page.relative_to(ROOT)}: tables differ from docs/results: run python "
                     f"-m benchmarks.docs_tables")
        if not args.check:
            page.write_text(new)
    missing = (set(TABLES) | set(docs_values.VALUES)) - shown
    if missing:
        sys.exit(f"tables or values in no page: {', '.join(sorted(missing))}")


if __name__ == "__main__":
    main()
