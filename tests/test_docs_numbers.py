"""Every number the README and the docs pages state in prose is backed by a stored result:
generated from docs/results (tables, inline values) or, for a measured value, found in a JSON
the page draws on (benchmarks/docs_numbers.py)."""
import json

from benchmarks import docs_numbers, docs_tables, docs_values


def test_no_page_states_a_number_that_no_stored_result_backs():
    bad = {page.name: docs_numbers.unbacked(page) for page in docs_tables.pages()}
    assert not {k: v for k, v in bad.items() if v}, bad


def _check(tmp_path, text):
    page = tmp_path / "page.md"
    page.write_text(text)
    return [number for _, number, _ in docs_numbers.unbacked(page)]


def test_the_check_tells_stored_values_from_invented_ones(tmp_path):
    # diloco_fragments.json holds sync's validation losses 1.599 and 1.614 (seeds 0 and 1)
    figure = "![f](results/diloco_fragments.png)\n"
    assert _check(tmp_path, figure + "Sync ends at 1.599 and 1.614.\n") == []
    assert _check(tmp_path, figure + "Sync ends at 1.598.\n") == ["1.598"]
    # without the page naming the JSON, the same value backs nothing
    assert _check(tmp_path, "Sync ends at 1.599.\n") == ["1.599"]
    # a derived percentage or ratio must be generated; a setting is an input
    assert _check(tmp_path, figure + "DiLoCo ends 4.2% above sync, 2.1x slower.\n") == \
        ["4.2%", "2.1x"]
    assert _check(tmp_path, "A 95% bootstrap interval; the 2% rule.\n") == []
    # code, versions and generated spans are not prose
    assert _check(tmp_path, "`lr=0.013` on torch 2.13 or Horovod 0.28.1, "
                            "<!--v:text_3layer_diloco-->4.1% above<!--/v-->.\n") == []


def test_inline_values_are_regenerated_from_their_json():
    value = docs_values.VALUES["text_3layer_diloco"]()
    stored = json.loads((docs_values.RESULTS / "diloco_fragments.json").read_text())["methods"]
    mean = {m: sum(r["val"] for r in stored[m]["runs"]) / len(stored[m]["runs"])
            for m in ("diloco_H32_o1.0_m0.5", "sync")}
    assert mean["diloco_H32_o1.0_m0.5"] > mean["sync"]
    assert value == f"{(mean['diloco_H32_o1.0_m0.5'] / mean['sync'] - 1) * 100:.1f}% above"
    stale = "x <!--v:text_3layer_diloco-->99.9% below<!--/v--> y"
    assert docs_values.render(stale) == f"x <!--v:text_3layer_diloco-->{value}<!--/v--> y"


def test_every_stored_result_is_shown():
    assert docs_numbers.not_shown() == []


def test_a_stored_result_no_page_shows_is_found(tmp_path, monkeypatch):
    for name in ("delayed_1gbit_np2_bs32.json", "orphan.json", "sweep/sweep.json",
                 "sweep/1gbit_lm_np2.json", "lost/cell.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("{}")
    monkeypatch.setattr(docs_numbers, "RESULTS", tmp_path)
    # the delayed runs by the table's glob, the sweep's cells beside its shown sweep.json
    # (tuner/sweep/sweep.json names "sweep/sweep"), the others by nothing
    assert docs_numbers.not_shown() == ["lost/cell.json", "orphan.json"]


def test_a_range_of_percentages_is_a_derived_number(tmp_path):
    assert _check(tmp_path, "It is 1-3% slower, 0.90-0.93x as fast.\n") == ["1%", "0.90x"]
