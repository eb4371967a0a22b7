"""The result tables of the README and the docs pages are what benchmarks/docs_tables.py makes
from docs/results: a table edited by hand, or a result rerun without regenerating the table,
fails here. And the kernel
benchmark writes the rows the table reads (a short real run)."""
import json
import subprocess
import sys

from benchmarks import docs_tables


def test_page_tables_match_stored_results():
    shown = set()
    for page in docs_tables.pages():
        text = page.read_text()
        shown.update(t for t in docs_tables.TABLES if f"<!-- table:{t} -->" in text)
        assert docs_tables.render(text) == text, \
            f"{page.name}'s tables differ from docs/results: run python -m benchmarks.docs_tables"
    assert shown == set(docs_tables.TABLES), "a generated table appears in no page"


def test_kernel_benchmark_writes_every_operator_against_torch(tmp_path):
    out = tmp_path / "kernels.json"
    subprocess.run([sys.executable, "-m", "benchmarks.kernels", "--repeats", "2",
                    "--json", str(out)], check=True, capture_output=True, timeout=300)
    res = json.loads(out.read_text())["results"]
    assert [r["params"] for r in res] == ["ResNet-50", "transformer LM"]
    for r in res:
        ours = [row for row in r["rows"] if row["impl"] == "ours"]
        assert {row["op"] for row in ours} >= {"pack", "unpack", "pull", "squared norm",
                                               "pack, cast to fp16"}
        for row in ours:
            assert row["vs_torch_ci95"][0] <= row["vs_torch"] <= row["vs_torch_ci95"][1]
            assert row["fastest_torch"] in {x["impl"] for x in r["rows"] if x["op"] == row["op"]}
            assert row["of_copy"] > 0
    assert (tmp_path / "kernels.png").stat().st_size > 10_000


def test_figures_are_redrawn_from_their_json_with_model_ranks_and_link(tmp_path):
    from benchmarks import replot
    drawn = 0
    for path in sorted(replot.RESULTS.rglob("*.json")):
        draw = replot.drawer(path, json.loads(path.read_text()))
        if draw is None or not path.with_suffix(".png").exists():
            continue
        if path.parent.name == "compression":  # one of each kind is enough for a test
            png = tmp_path / f"{path.stem}.png"
            draw(str(png))
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            drawn += 1
    assert drawn == 2
    from benchmarks.charts import title
    run = json.loads((replot.RESULTS / "compression" / "lm_300mbit.json").read_text())
    assert title(run).startswith("lm, 2 ranks, 300mbit")
