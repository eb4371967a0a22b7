"""docs/design.md's layout table ("Where things are") names every module of the package and of
the benchmarks, and nothing that does not exist: a module added, moved or removed without the
map fails here. In a row's first cell a bare name lies in the folder of the path before it."""
import re
import subprocess
import sys
from pathlib import PurePosixPath

from conftest import ROOT

CHECKED = ("horovod_ext", "benchmarks")


def listed():
    text = (ROOT / "docs" / "design.md").read_text()
    section = text.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    names = set()
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        folder = PurePosixPath(".")
        for name in re.findall(r"`([^`]+)`", row.split(" | ", 1)[0]):
            path = PurePosixPath(name) if "/" in name else folder / name
            folder = path.parent if not name.endswith("/") else path
            names.add(str(path) + ("/" if name.endswith("/") else ""))
    return names


def present():
    return {str(p.relative_to(ROOT)) for top in CHECKED for p in (ROOT / top).rglob("*.py")}


def test_every_module_is_on_the_map():
    missing = sorted(present() - listed())
    assert not missing, f"add these to docs/design.md's layout table: {missing}"


def test_the_map_names_only_what_exists():
    stale = sorted(n for n in listed() if not (ROOT / n).exists())
    assert not stale, f"docs/design.md's layout table names what does not exist: {stale}"


def test_the_map_reads_bare_names_in_the_folder_before_them():
    names = listed()
    assert {"horovod_ext/modes/easgd.py", "benchmarks/diloco_charts.py",
            "horovod_ext/engine/search_space.py", "horovod_ext/runtime/horovod_knobs.py"} <= names
    assert "easgd.py" not in names


def test_no_module_edits_the_import_path():
    edits = [str(p.relative_to(ROOT)) for top in ("horovod_ext", "benchmarks", "tests",
                                                  "examples") for p in (ROOT / top).rglob("*.py")
             if "sys.path" in p.read_text() and p.name != "test_layout_map.py"]
    assert not edits and "sys.path" not in (ROOT / "setup.py").read_text(), edits


def test_every_benchmark_entry_runs_as_a_module():
    entries = sorted(str(p.relative_to(ROOT).with_suffix("")).replace("/", ".")
                     for p in (ROOT / "benchmarks").rglob("*.py")
                     if "ArgumentParser(" in p.read_text())
    assert "benchmarks.run" in entries and "benchmarks.science.diloco_text" in entries
    for entry in entries:  # from another directory: the package is found by PYTHONPATH
        proc = subprocess.run([sys.executable, "-m", entry, "--help"], capture_output=True,
                              text=True, cwd=ROOT / "docs", timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith("usage:"), (entry, proc.stderr)
