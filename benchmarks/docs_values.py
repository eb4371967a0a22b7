"""The derived numbers that pages state in prose (a percentage, a ratio), each computed from the
stored JSON it rests on. A page writes ``<!--v:NAME-->text<!--/v-->``; docs_tables.py fills the
text from ``VALUES[NAME]()``, and tests/test_docs_tables.py fails when a page's text differs."""
import json
import re
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"


def pages():
    """Every page that may hold a table or a value: the README and the docs pages."""
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def _runs(filename, method):
    return json.loads((RESULTS / filename).read_text())["methods"][method]["runs"]


def mean_val(filename, method):
    """The validation loss of ``method`` at the end, averaged over its seeds."""
    return statistics.mean(r["val"] for r in _runs(filename, method))


def relative(filename, method, baseline):
    """How far ``method``'s mean final validation loss lies from ``baseline``'s, in words:
    '4.1% above' or '1.2% below'."""
    change = mean_val(filename, method) / mean_val(filename, baseline) - 1
    return f"{abs(change) * 100:.1f}% {'above' if change > 0 else 'below'}"


def slower(filename, mode, baseline):
    """How much slower the median step of ``mode`` is than ``baseline``'s in a throughput JSON."""
    steps = {r["mode"]: r["step_ms"] for r in json.loads((RESULTS / filename).read_text())["results"]}
    change = steps[mode] / steps[baseline] - 1
    return f"{abs(change) * 100:.1f}% {'slower' if change > 0 else 'faster'}"


def advisor_picks(check="advisor/check.json"):
    """How the advisor's picks in a check compare with the measured fastest of ours."""
    cells = json.loads((RESULTS / check).read_text())["cells"].values()
    same = sum(c["recommended"] == c["fastest"] for c in cells)
    text = f"the measured fastest of ours on {same} of {len(cells)} links"
    worst = max(c["recommended_over_fastest"] for c in cells)
    if same == len(cells) - 1:
        text += f", and {(worst - 1) * 100:.0f}% behind it on the other"
    elif same < len(cells):
        text += f", and {(worst - 1) * 100:.0f}% behind it at most on the others"
    return text


def _text(name, method, baseline):
    return lambda: relative(name, method, baseline)


VALUES = {
    "text_4096_diloco": _text("diloco_text_4096.json", "diloco_H32_o1.0_m0.7", "sync"),
    "text_4096_paper": _text("diloco_text_4096.json", "diloco_H32", "sync"),
    "text_diloco_h32": _text("diloco_text.json", "diloco_H32_o1.0_m0.5", "sync"),
    "text_paper_h32": _text("diloco_text.json", "diloco_H32", "sync"),
    "text_diloco_h8": _text("diloco_text.json", "diloco_H8_o1.0_m0.5", "sync"),
    "text_3layer_diloco": _text("diloco_fragments.json", "diloco_H32_o1.0_m0.5", "sync"),
    "text_3layer_localsgd": _text("diloco_fragments.json", "localsgd_H32", "sync"),
    "advisor_picks": advisor_picks,
    "advisor_picks_repeat": lambda: advisor_picks("advisor/repeat/check.json"),
    "stats_sync_unshaped": lambda: slower("stats_overhead_unshaped.json", "sync+stats", "sync"),
    "stats_delayed_unshaped": lambda: slower("stats_overhead_unshaped.json", "delayed+stats",
                                             "delayed"),
}
SPAN = re.compile(r"<!--v:([\w.-]+)-->(.*?)<!--/v-->")


def render(text):
    """``text`` with every inline value regenerated."""
    def fill(m):
        if m.group(1) not in VALUES:
            raise SystemExit(f"unknown value {m.group(1)!r}; known: {', '.join(VALUES)}")
        return f"<!--v:{m.group(1)}-->{VALUES[m.group(1)]()}<!--/v-->"
    return SPAN.sub(fill, text)
