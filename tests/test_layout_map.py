"""docs/design.md's layout table ("Where things are") names every module of the package and of
the benchmarks, and nothing that does not exist: a module added, moved or removed without the
map fails here. In a row's first cell a bare name lies in the folder of the path before it."""
import re
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
    assert {"horovod_ext/modes/easgd.py", "benchmarks/science/labels.py",
            "horovod_ext/tuning.py", "horovod_ext/horovod_knobs.py"} <= names
    assert "easgd.py" not in names
