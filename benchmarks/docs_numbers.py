"""Which numbers of the README and the docs pages no stored result backs.

A page states results in three ways: generated tables (``<!-- table:NAME -->``, from
docs_tables.py), generated inline values (``<!--v:NAME-->4.1%<!--/v-->``, from docs_values.py),
and prose. In prose, outside code, links and generated parts:
- a number with decimals (``1.345``, ``563.6 MB``) must be a value of a JSON the page draws on
  (a ``results/...`` JSON or figure it names, the figure standing for the JSON beside it), at the
  precision shown (in its unit or in thousands, millions or thousandths of it);
- a percentage must be a stored fraction (an accuracy) shown in percent; a ratio (``2.1x``), or
  a percentage derived from several values, must be generated, unless it is one of the stated
  settings in ``SETTINGS`` (a confidence level, a rule's threshold, a codec's density), which are
  inputs, not results.
Whole numbers without a sign are counts and sizes (ranks, steps, layers) and are not checked.

``python -m benchmarks.docs_numbers`` lists every unbacked number; tests/test_docs_numbers.py
fails on any.
"""
import fnmatch
import json
import re
import sys
from pathlib import Path

from benchmarks import docs_values

RESULTS = docs_values.RESULTS
# percentages and ratios that are inputs: each phrase around the number says which setting it is
SETTINGS = [
    r"95% (bootstrap|interval|confidence)", r"\b(within|by less than|under) 1%",
    r"(more than|within) (2|5|10)%", r"(2|5)% rule", r"\d+% (density|of each chunk)",
    r"allows 25%", r"(density|top-k at) \d+%", r"\d+x (fewer|smaller|less|the) (bytes|payload)",
]
NUMBER = re.compile(r"(?<![\w.\-/#:])(\d[\d,]*(?:\.\d+)?)(?:-\d+(?:\.\d+)?(?=\s?%|x\b))?"
                    r"(\s?%|x\b|×)?")  # a range ("1-3%") counts as its first number with the sign
SKIP = [re.compile(p, re.S) for p in (
    r"```.*?```", r"`[^`\n]*`", r"<!-- table:([\w-]+) -->.*?<!-- /table:\1 -->",
    r"<!--v:[\w.-]+-->.*?<!--/v-->", r"\]\([^)]*\)", r"<[^>]+>", r"https?://\S+",
    r"\d+\.\d+\.\d+",  # versions
    r"\b(Python|torch|Horovod|numpy|C\+\+|[Cc]apabilit(y|ies))\W{1,4}\d+(\.\d+)*\+?"
    r"(( and| or|,| to|;) \d+(\.\d+)*\+?)*")]


def referenced(text):
    """The JSON files of docs/results that a page names, itself or through a figure."""
    found = set()
    for name in re.findall(r"results/([\w/.\-]+?)\.(?:json|png)", text):
        path = RESULTS / f"{name}.json"
        if path.exists():
            found.add(path)
    return sorted(found)


def leaves(value, out):
    """Every number in a JSON value."""
    if isinstance(value, bool):
        return out
    if isinstance(value, (int, float)):
        out.append(float(value))
    elif isinstance(value, dict):
        for v in value.values():
            leaves(v, out)
    elif isinstance(value, list):
        for v in value:
            leaves(v, out)
    return out


def shown_values(paths):
    """Every number of ``paths`` as text per number of decimals ({decimals: {text}}): in its
    unit and in thousands, millions or thousandths of it; and, apart, the fractions in percent."""
    numbers = []
    for path in paths:
        leaves(json.loads(path.read_text()), numbers)
    scaled = [abs(v) * k for v in numbers for k in (1, 1e3, 1e-3, 1e-6)]
    return ({d: {f"{v:.{d}f}" for v in scaled} for d in range(0, 5)},
            {d: {f"{abs(v) * 100:.{d}f}" for v in numbers if abs(v) <= 1} for d in range(0, 5)})


def prose(text):
    """(line number, number, sign, line) of every number outside code, links and generated
    parts."""
    for pattern in SKIP:
        text = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    for no, line in enumerate(text.splitlines(), 1):
        for m in NUMBER.finditer(line):
            yield no, m.group(1).replace(",", ""), (m.group(2) or "").strip(), line


def unbacked(page):
    """The numbers of ``page`` that no stored result backs: [(line number, number, line)]."""
    raw = page.read_text()
    paths = referenced(raw)
    values, fractions = shown_values(paths)
    bad = []
    for no, number, sign, line in prose(raw):
        decimals = len(number.split(".")[1]) if "." in number else 0
        if sign and any(re.search(s, line) for s in SETTINGS):
            continue
        if sign == "%" and number in fractions[min(decimals, 4)]:
            continue
        if sign or decimals and number not in values[min(decimals, 4)]:
            bad.append((no, number + sign, line.strip()))
    return bad


def not_shown():
    """The stored JSONs of docs/results that nothing shows: not named by a page or by the code
    that makes the pages' tables (a name or a glob), nor beside one that is in its folder (a
    sweep's cells, a time-to-loss cell's step times and checks)."""
    named = "".join(p.read_text() for p in docs_values.pages()) + "".join(
        (docs_values.ROOT / "benchmarks" / f).read_text()
        for f in ("docs_tables.py", "docs_values.py", "advisor_tables.py", "compression_tables.py"))
    patterns = [p.split("results/")[-1] for p in re.findall(r"[\w/*.-]*\*[\w/*.-]*\.json", named)]
    patterns = [p for p in patterns if not p.startswith("*")]  # a name, not every JSON
    paths = sorted(RESULTS.rglob("*.json"))
    rel = {p: p.relative_to(RESULTS).as_posix() for p in paths}
    shown = {p for p in paths if rel[p][:-5] in named or
             any(fnmatch.fnmatch(rel[p], pat) for pat in patterns)}
    folders = {p.parent for p in shown if p.parent != RESULTS}
    return [rel[p] for p in paths if p not in shown and p.parent not in folders]


def main():
    total = 0
    for page in docs_values.pages():
        for no, number, line in unbacked(page):
            print(f"{page.relative_to(docs_values.ROOT)}:{no}: {number}  | {line[:110]}")
            total += 1
    print(f"{total} unbacked")
    for rel in not_shown():
        print(f"docs/results/{rel}: shown nowhere")
    sys.exit(1 if total or not_shown() else 0)


if __name__ == "__main__":
    main()
