"""Wall time and peak memory, for CLI summaries and benchmarks."""
from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from typing import Iterator


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far.

    Linux's VmHWM where available: getrusage's ru_maxrss survives exec, so a
    process started by a bigger one would report its parent's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


class Timer:
    def __init__(self) -> None:
        self.seconds = 0.0


@contextmanager
def timed() -> Iterator[Timer]:
    t = Timer()
    start = time.perf_counter()
    try:
        yield t
    finally:
        t.seconds = time.perf_counter() - start


class StageTimes(dict):
    """Seconds per named stage of a run (featurising, tree, training, ...), in the order the stages first ran."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - start

    def add(self, other: "StageTimes") -> "StageTimes":
        for name, seconds in other.items():
            self[name] = self.get(name, 0.0) + seconds
        return self

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.items())
