"""Output of long runs without a terminal (as under horovodrun): one plain line per finished
item, never a carriage-return bar; and ``python -m horovod_ext.advise`` starts without a
RuntimeWarning."""
import io
import subprocess
import sys

from horovod_ext.runtime.progress import Progress, progress


def test_one_line_per_item_without_a_terminal():
    stream = io.StringIO()
    shown = Progress(3, "rounds", stream=stream)
    for _ in range(3):
        shown.update()
    shown.close()
    text = stream.getvalue()
    assert "\r" not in text
    assert [line.split(",")[0] for line in text.splitlines()] == \
        ["rounds: 1/3 done", "rounds: 2/3 done", "rounds: 3/3 done"]


def test_disabled_shows_nothing(capsys):
    stream = io.StringIO()
    shown = Progress(2, "runs", enabled=False, stream=stream)
    shown.update()
    shown.write("a result line")
    assert stream.getvalue() == "" and capsys.readouterr().out == ""


def test_progress_yields_every_item(capsys):
    assert list(progress(range(4), "lists", enabled=False)) == [0, 1, 2, 3]


def test_advise_module_starts_without_runtime_warning():
    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m",
                           "horovod_ext.advise", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" not in proc.stderr and "usage" in proc.stdout
