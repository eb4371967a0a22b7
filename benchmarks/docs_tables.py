"""Tables in the README and the docs pages generated from stored results (docs/results/*.json),
so every number a reader sees comes from a stored run. Each table sits between
``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` in any page (one table may appear in
several); this script rewrites what is between them, and fails on a marker it does not know or a
table that appears nowhere.

    python benchmarks/docs_tables.py            rewrite README.md and docs/*.md
    python benchmarks/docs_tables.py --check    exit 1 when a page differs from the results
"""
import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

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


def compression(name):
    """Per optimizer of one throughput run: step time, bytes per step, and the speedup over the
    fastest peer, over DDP + PowerSGD and over DDP + fp16 (paired rounds, 95% intervals)."""
    from ratios import speedup
    path = RESULTS / "compression" / f"{name}.json"
    run = json.loads(path.read_text())
    c, by = run["config"], {r["mode"]: r for r in run["results"]}
    lines = [f"{c['model']}, {c['np']} ranks, {c['link']} link, {c['rounds']} rounds of "
             f"{c['steps']} steps; `{path.relative_to(ROOT)}`. Speedups are ratios of median step "
             "times over paired rounds, 95% bootstrap interval.", "",
             "| optimizer | step (ms) | MB sent per step | x fastest peer | x DDP + PowerSGD | "
             "x DDP + fp16 |", "|---|---|---|---|---|---|"]
    for r in run["results"]:
        cells = []
        for peer in ("ddp-powersgd", "ddp-fp16"):
            if peer in by:
                cells.append(interval(*speedup(by[peer]["round_ms"], r["round_ms"])))
            else:
                cells.append("")
        sent = "?" if r["bytes_per_step"] is None else f"{r['bytes_per_step'] / 1e6:.1f}"
        lines.append(f"| {r['mode']} | {r['step_ms']:.0f} | {sent} | "
                     f"{interval(r['vs_best_peer'], r['vs_best_peer_ci95'])} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def compression_text():
    """Per method of the text experiment: the learning rate chosen on validation, the validation
    loss of each seed, its mean against sync's, and the bytes each rank sent."""
    path = RESULTS / "compression_text.json"
    run = json.loads(path.read_text())
    sync = run["methods"]["sync"]["runs"]
    base = sum(r["val"] for r in sync) / len(sync)
    lrs = run["lrs"]
    chosen = (f"learning rate chosen from {lrs} on validation (seed 0)" if len(lrs) > 1
              else f"learning rate {lrs[0]} for every method")
    lines = [f"{run['ranks']} ranks, {run['steps']} steps, batch {run['batch']} per rank, AdamW, "
             f"{chosen}; `{path.relative_to(ROOT)}`.", "",
             "| method | lr | validation loss (seeds) | mean vs sync | MB sent per rank |",
             "|---|---|---|---|---|"]
    for name, m in run["methods"].items():
        vals = [r["val"] for r in m["runs"]]
        mean = sum(vals) / len(vals)
        lines.append(f"| {name} | {m['lr']} | {', '.join(f'{v:.3f}' for v in vals)} | "
                     f"{100 * (mean / base - 1):+.1f}% | "
                     + ("not counted" if m["runs"][0]["bytes"] is None else
                        f"{m['runs'][0]['bytes'] / 1e6:.1f}") + " |")
    return "\n".join(lines)


TABLES = {"kernels_cpu": kernels_cpu,
          "compression_text": compression_text,
          "compression_lm_1gbit": lambda: compression("lm_1gbit"),
          "compression_lm_300mbit": lambda: compression("lm_300mbit")}


def pages():
    """Every page that may hold a table."""
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def render(text):
    """``text`` with each of its tables regenerated."""
    for name in re.findall(r"<!-- table:([\w-]+) -->", text):
        if name not in TABLES:
            raise SystemExit(f"unknown table {name!r}; known: {', '.join(TABLES)}")
        pattern = re.compile(rf"(<!-- table:{name} -->\n).*?(<!-- /table:{name} -->)", re.S)
        text = pattern.sub(lambda m: m.group(1) + TABLES[name]() + "\n" + m.group(2), text)
    return text


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = p.parse_args()
    shown = set()
    for page in pages():
        old = page.read_text()
        shown.update(re.findall(r"<!-- table:([\w-]+) -->", old))
        new = render(old)
        if args.check and new != old:
            sys.exit(f"{page.relative_to(ROOT)}: tables differ from docs/results: run python "
                     f"benchmarks/docs_tables.py")
        if not args.check:
            page.write_text(new)
    missing = set(TABLES) - shown
    if missing:
        sys.exit(f"tables in no page: {', '.join(sorted(missing))}")


if __name__ == "__main__":
    main()
