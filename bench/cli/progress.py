"""Progress of the runner's stages for the CLI: rich bars on a terminal, plain lines in a log.

The runner reports progress as events (``stage``, ``done``, ``total`` batches); library code
prints nothing. On a terminal they drive rich progress bars. In a log (CI, ``nohup``) bars
would print nothing until the end, so ``LineProgress`` writes one line when a stage starts and
when it ends, and a heartbeat line at least every ``interval`` seconds while it runs (a batch
of an adaptive attack can take minutes), each with done / total batches, elapsed time and an
ETA, and short enough for an 80-column log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

HEARTBEAT_S = 60.0


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class LineProgress:
    """Plain-line progress (see the module docstring); a context manager and an event sink.

    Args:
        write: where a line goes (e.g. ``console.print`` or ``print``).
        interval: the longest silence while a stage runs, in seconds.
        now: the clock (injectable for tests).
    """

    def __init__(self, write: Callable[[str], Any], interval: float = HEARTBEAT_S,
                 now: Callable[[], float] = time.monotonic):
        self.write = write
        self.interval = interval
        self.now = now
        self.stage: str | None = None
        self.done = 0
        self.total = 0
        self.started = 0.0
        self.last_line = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def line(self) -> str:
        """The current stage's status line."""
        elapsed = self.now() - self.started
        if 0 < self.done < self.total:
            eta = f", ETA {_clock(elapsed / self.done * (self.total - self.done))}"
        elif self.done == 0 and self.total:
            eta = ", ETA unknown"
        else:
            eta = ""
        return f"{self.stage}: {self.done}/{self.total} batches, {_clock(elapsed)} elapsed{eta}"

    def _emit(self) -> None:
        self.write(self.line())
        self.last_line = self.now()

    def __call__(self, event: Any) -> None:
        with self._lock:
            if event.stage != self.stage:
                self.stage, self.started = event.stage, self.now()
                self.done, self.total = event.done, event.total
                self._emit()
                if self.done < self.total:
                    return
            self.done, self.total = event.done, event.total
            if self.done >= self.total or self.now() - self.last_line >= self.interval:
                self._emit()

    def heartbeat(self) -> None:
        """Writes the status line if the stage has been silent for ``interval`` seconds."""
        with self._lock:
            if self.stage is not None and self.done < self.total and self.now() - self.last_line >= self.interval:
                self._emit()

    def __enter__(self) -> LineProgress:
        def beat() -> None:
            while not self._stop.wait(min(5.0, self.interval)):
                self.heartbeat()

        self._thread = threading.Thread(target=beat, name="shieldbench-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def console():
    """The CLI's rich console (stdout, no syntax highlighting)."""
    from rich.console import Console

    return Console(stderr=False, highlight=False)
