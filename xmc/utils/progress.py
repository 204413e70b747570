"""Progress of the long steps (epochs, validation, word vectors, tree building, training layers, prediction).

On a terminal, a tqdm bar. When stderr is not a terminal (a log file, a job scheduler), tqdm would stay
silent, so a plain line goes to stderr every ``$XMC_PROGRESS_INTERVAL`` seconds (default 30) instead::

    attentionxml level 1/1 epoch 3: 1,200/2,400 batch (50%), 41.3 batch/s, 29 s left; loss 0.0412

A background thread writes it, so a step that reports nothing until it ends (a native call building a
tree, validation) still shows that it is running. With an interval of 0 every update writes a line
(tests use it). Every place that shows progress uses :func:`progress`.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Optional

INTERVAL_ENV = "XMC_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0


def interval() -> float:
    """Seconds between two progress lines in a log: ``$XMC_PROGRESS_INTERVAL``, else 30."""
    value = os.environ.get(INTERVAL_ENV, "").strip()
    if not value:
        return DEFAULT_INTERVAL
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"${INTERVAL_ENV}: expected a number of seconds, found {value!r}") from None
    if not seconds >= 0:
        raise ValueError(f"${INTERVAL_ENV}: expected a number of seconds >= 0, found {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """42 s, 3 min 05 s, 2 h 07 min."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """What :func:`progress` returns; this base shows nothing (``enabled=False``)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, text: str) -> None:
        """A short note after the counts (the running loss)."""

    def close(self) -> None:
        pass

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Bar(Progress):
    def __init__(self, desc: str, total: Optional[int], unit: str, initial: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, file=sys.stderr)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def set_postfix(self, text: str) -> None:
        self.bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        self.bar.close()


class _LogLines(Progress):
    """One line per interval on stderr, written by a daemon thread (or per update when the interval is 0)."""

    def __init__(self, desc: str, total: Optional[int], unit: str, initial: int, every: float) -> None:
        self.desc, self.total, self.unit, self.every = desc, total, unit, every
        self.done, self.first, self.postfix = initial, initial, ""
        self.start = time.perf_counter()
        self.lines = 0
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
        if every > 0:
            self._thread = threading.Thread(target=self._tick, name=f"xmc progress: {desc}", daemon=True)
            self._thread.start()
        else:
            self._write()

    def _tick(self) -> None:
        while not self._closed.wait(self.every):
            self._write()

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
        if self.every <= 0:
            self._write()

    def set_postfix(self, text: str) -> None:
        self.postfix = text

    def line(self, final: bool = False) -> str:
        """``desc: done/total unit (share), rate, time left``; at the end ``desc: done ... in time``."""
        elapsed = time.perf_counter() - self.start
        with self._lock:
            done, counted = self.done, self.done - self.first
        rate = counted / elapsed if elapsed > 0 else 0.0
        parts = []
        if self.total is not None:
            parts.append(f"{done:,}/{self.total:,} {self.unit} ({done / max(self.total, 1):.0%})")
        elif done:
            parts.append(f"{done:,} {self.unit}")
        if counted > 0:
            parts.append(f"{rate:,.1f} {self.unit}/s")
        if final:
            parts.append(f"done in {format_duration(elapsed)}")
        elif self.total is not None and counted > 0 and done < self.total:
            parts.append(f"{format_duration((self.total - done) / rate)} left")
        else:
            parts.append(f"{format_duration(elapsed)} elapsed")
        return f"{self.desc}: " + ", ".join(parts) + (f"; {self.postfix}" if self.postfix else "")

    def _write(self, final: bool = False) -> None:
        self.lines += 1
        print(self.line(final), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._thread is not None:
            self._thread.join()
        if self.lines:  # a step that showed progress also shows its end
            self._write(final=True)


def progress(desc: str, total: Optional[int] = None, unit: str = "it", initial: int = 0,
             enabled: bool = True) -> Progress:
    """Progress of a step of ``total`` ``unit`` (None: unknown, then done count and elapsed time only), to use
    as a context manager: a tqdm bar when stderr is a terminal, else a plain line per interval (see the module
    docstring); nothing when not ``enabled`` (``--quiet``, or a rank other than 0 under torchrun)."""
    if not enabled:
        return Progress()
    if getattr(sys.stderr, "isatty", lambda: False)():
        return _Bar(desc, total, unit, initial)
    return _LogLines(desc, total, unit, initial, interval())
