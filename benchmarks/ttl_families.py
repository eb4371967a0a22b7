"""Tables of the local-update methods across the stored links: how the period, the overlap of the
outer rounds and their codec move the time to the target loss (the six time-to-loss cells), and
what they cost in validation loss at equal steps (the training curves). docs_tables.py puts
them in docs/modes.md and docs/compression.md."""
import statistics

from benchmarks.ttl_report import link_of, ordered, same_method
from horovod_ext import methods as catalog

# the families of ours, each at the periods of the grid: blocking DiLoCo, blocking local SGD, and
# the overlapped rounds (2 fragments, each exchange behind a quarter of the period, mix 0.5) with
# float32, 4-bit and top-k (5% of each chunk, 4-bit values) pseudo-gradients
ROUNDS = {
    "DiLoCo, blocking": ["diloco-H8", "diloco-H32"],
    "local SGD, blocking": ["localsgd-H8", "localsgd-H32", "localsgd-H128"],
    "DiLoCo overlapped, float32": ["diloco-H32-o1.0-m0.5-f2-t8-a0.5",
                                   "diloco-H128-o1.0-m0.5-f2-t32-a0.5"],
    "DiLoCo overlapped, int4": ["diloco-H16-o1.0-m0.5-f2-t4-a0.5+int4",
                                "diloco-H32-o1.0-m0.5-f2-t8-a0.5+int4",
                                "diloco-H128-o1.0-m0.5-f2-t32-a0.5+int4"],
    "DiLoCo overlapped, top-k": ["diloco-H32-o1.0-m0.5-f2-t1-a0.5+topk-d0.05-b4",
                                 "diloco-H128-o1.0-m0.5-f2-t32-a0.5+topk-d0.05-b4"],
    "local SGD overlapped, int4": ["diloco-H32-o1.0-m0.0-f2-t8-a0.5+int4"],
}


def _settings(name):
    """'H | overlap' of a method of the catalog."""
    s = dict(catalog.parse(name).mode_settings)
    return f"{s['period']} | {s.get('overlap', 0)}"


def _find(stored, name):
    """The entry of ``stored`` that is method ``name``, whatever its spelling there."""
    if name in stored:
        return stored[name]
    return next((v for k, v in stored.items() if same_method(k, name)), None)


def rounds_table(outs):
    """Markdown: per family and period, the time to the target on every link as a multiple of
    that link's no-communication limit; the best of each family's periods in bold."""
    outs = ordered(outs)
    lines = ["| method | H | overlap | " + " | ".join(link_of(o) for o in outs) + " |",
             "|---|---|---|" + "---|" * len(outs)]
    for family, names in ROUNDS.items():
        best = {}
        for i, out in enumerate(outs):
            got = [(_find(out["methods"], n)["vs_limit"], n) for n in names
                   if (_find(out["methods"], n) or {}).get("vs_limit") is not None]
            best[i] = min(got)[1] if got else None
        for name in names:
            cells = []
            for i, out in enumerate(outs):
                r = _find(out["methods"], name)
                if r is None:
                    cells.append("-")
                elif r.get("vs_limit") is None:
                    cells.append("not reached")
                else:
                    text = f"{r['vs_limit']:.1f}x"
                    cells.append(f"**{text}**" if best[i] == name else text)
            lines.append(f"| {family} | {_settings(name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def loss_table(trained, baseline="diloco-H32-o1.0-m0.5"):
    """Markdown: the validation loss after the run's steps (mean over seeds) of each family's
    methods against blocking float32 DiLoCo at H = 32, from the training curves."""
    def val(name):
        return statistics.fmean(r["val"] for r in _find(trained["methods"], name)["runs"])
    base = val(baseline)
    lines = [f"Validation loss after {trained['steps']} steps (mean of the seeds; each method at "
             f"its best learning rate of the grid), against blocking float32 DiLoCo at H = 32 "
             f"({base:.4f}).", "",
             "| method | H | overlap | validation loss | against blocking DiLoCo H = 32 |",
             "|---|---|---|---|---|"]
    for family, names in ROUNDS.items():
        for name in names:
            if _find(trained["methods"], name) is not None:
                lines.append(f"| {family} | {_settings(name)} | {val(name):.4f} | "
                             f"{(val(name) / base - 1) * 100:+.1f}% |")
    return "\n".join(lines)
