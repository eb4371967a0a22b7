"""The package's layers, from the bottom: the runtime helpers and the kernels; the codecs; the
gradient engine; the modes; the faces (optimizer, elastic, stats, the catalog, the advisor).
A module imports only from its own layer or below: codecs never see the engine, the engine
imports no mode, nothing below the faces imports a face. Every file of the package and of the
benchmarks is under 300 lines, and the kernels import without Horovod or the rest of the
package."""
import ast
import subprocess
import sys

import pytest

from conftest import ROOT

LAYERS = ("runtime", "codecs", "engine", "modes")  # then everything else: the faces
BOTTOM = {"horovod_ext.ops", "horovod_ext._version", "horovod_ext._C"}


def layer(module):
    if module in BOTTOM or module == "horovod_ext":
        return 0
    part = module.split(".")[1]
    return LAYERS.index(part) if part in LAYERS else len(LAYERS)


def imports(path):
    """The horovod_ext modules a file imports (``from horovod_ext import ops`` is ops)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("horovod_ext")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("horovod_ext"):
            if node.module == "horovod_ext":
                out |= {f"horovod_ext.{a.name}" for a in node.names}
            else:
                out.add(node.module)
    return out


MODULES = sorted((ROOT / "horovod_ext").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_from_a_layer_above(path):
    rel = path.relative_to(ROOT).with_suffix("")
    module = ".".join(rel.parts).removesuffix(".__init__")
    if module == "horovod_ext":
        return  # the face names everything, imported on first use
    above = sorted(m for m in imports(path) if layer(m) > layer(module))
    assert not above, f"{module} (layer {layer(module)}) imports from above: {above}"


def test_layer_rule_can_fail():
    assert layer("horovod_ext.engine.bucket") > layer("horovod_ext.codecs.base")
    assert layer("horovod_ext.optimizer") > layer("horovod_ext.modes.diloco")


def test_files_are_under_300_lines():
    long = {str(p.relative_to(ROOT)): n for top in ("horovod_ext", "benchmarks")
            for p in (ROOT / top).rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"files over 300 lines: {long}"


def test_kernels_import_without_horovod():
    code = ("import sys, horovod_ext.ops; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('horovod', 'horovod_ext')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert eval(out.stdout) == ["horovod_ext", "horovod_ext._C", "horovod_ext._version",
                                "horovod_ext.ops", "horovod_ext.runtime", "horovod_ext.runtime.log"]


def _benchmark_modules():
    for p in sorted((ROOT / "benchmarks").rglob("*.py")):
        yield ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"), p


ENTRIES = {m for m, p in _benchmark_modules() if 'if __name__ == "__main__"' in p.read_text()}


def _benchmark_imports(path):
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("benchmarks"):
            out |= ({f"{node.module}.{a.name}" for a in node.names}
                    if node.module in ("benchmarks", "benchmarks.science") else {node.module})
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("benchmarks")}
    return out


@pytest.mark.parametrize("module,path", list(_benchmark_modules()), ids=lambda x: str(x))
def test_benchmarks_import_shared_modules_only(module, path):
    """An entry point (``python -m benchmarks.<entry>``) imports shared modules, never another
    entry point; the experiments (benchmarks.science) build on the benchmarks' shared modules,
    which import nothing of the experiments."""
    got = _benchmark_imports(path)
    assert not got & ENTRIES, f"{module} imports entry points {sorted(got & ENTRIES)}"
    if not module.startswith("benchmarks.science"):
        down = sorted(m for m in got if m.startswith("benchmarks.science"))
        assert not down, f"{module} imports from the experiments: {down}"


def test_entry_points_are_found():
    assert {"benchmarks.throughput", "benchmarks.run", "benchmarks.soak",
            "benchmarks.science.diloco_text"} <= ENTRIES
