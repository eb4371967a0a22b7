"""Progress of long runs that stays readable under ``horovodrun``: a bar (tqdm) only on a terminal;
otherwise (horovodrun, mpirun, a log file) one plain line per finished item, which horovodrun
prefixes with the rank like any other line."""
import sys
import time


class Progress:
    """``total`` items of work named ``desc``; ``enabled=False`` (the ranks other than 0, say)
    shows nothing. ``update(n)`` after each item, ``write(line)`` for a result line, ``close()``."""

    def __init__(self, total, desc, enabled=True, stream=None):
        self.total, self.desc, self.enabled = total, desc, enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self._start = time.perf_counter()
        self._bar = None
        if enabled and self.stream.isatty():
            try:
                from tqdm import tqdm
            except ImportError:  # optional: plain lines without it
                return
            self._bar = tqdm(total=total, desc=desc, leave=False, file=self.stream)

    def update(self, n=1):
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled:
            print(f"{self.desc}: {self.done}/{self.total} done, "
                  f"{time.perf_counter() - self._start:.1f} s", file=self.stream, flush=True)

    def write(self, line):
        """A line of results, above the bar on a terminal."""
        if self._bar is not None:
            self._bar.write(line)
        elif self.enabled:
            print(line, flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()


def progress(items, desc, enabled=True):
    """Iterates over ``items``, showing the progress as ``Progress`` does."""
    items = list(items)
    shown = Progress(len(items), desc, enabled)
    for item in items:
        yield item
        shown.update()
    shown.close()
