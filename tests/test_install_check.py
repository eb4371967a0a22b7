"""The check commands the Install and GPUs pages tell users to run work as written: each is read
from its page and run in a fresh interpreter outside the repository."""
import shlex
import subprocess
import sys
from pathlib import Path

import horovod
import torch

import horovod_ext

DOCS = Path(__file__).resolve().parent.parent / "docs"


def page_command(page):
    """The first ``python -c "..."`` line of a page's code blocks."""
    line = next(ln for ln in (DOCS / page).read_text().splitlines() if ln.startswith("python -c"))
    return shlex.split(line.split("   #")[0])[2]


def run(code, tmp_path):
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=True, timeout=120).stdout.strip()


def test_the_install_check_prints_the_versions_and_the_instruction_set(tmp_path):
    out = run(page_command("install.md"), tmp_path).split()
    assert out[:3] == [horovod_ext.__version__, horovod.__version__, torch.__version__]
    assert out[3] in ("avx512", "avx2", "base")


def test_the_gpu_check_says_whether_the_cuda_kernels_were_built(tmp_path):
    from horovod_ext import ops
    assert run(page_command("gpus.md"), tmp_path) == str(ops.with_cuda)
    assert not ops.with_cuda or torch.version.cuda is not None  # CUDA kernels need a CUDA torch
