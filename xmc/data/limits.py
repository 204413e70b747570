"""Input limits every reader enforces, so a hostile or broken file cannot make
xmc allocate without bound: the longest line (bytes, line ending excluded) and
the most labels on one document.

A reader's keyword argument wins; ``None`` falls back to the environment
variables ``XMC_MAX_LINE_BYTES`` / ``XMC_MAX_LABELS_PER_DOC``, then to the
defaults below. The CLI's ``--max-line-bytes`` / ``--max-labels-per-doc`` pass
the keyword arguments.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

DEFAULT_MAX_LINE_BYTES = 64 << 20
DEFAULT_MAX_LABELS_PER_DOC = 100_000
LINE_ENV = "XMC_MAX_LINE_BYTES"
LABELS_ENV = "XMC_MAX_LABELS_PER_DOC"


def _resolve(name: str, value: Optional[int], env: str, default: int) -> int:
    source = name
    if value is None:
        raw = os.environ.get(env, "").strip()
        if not raw:
            return default
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise ValueError(f"{env}={raw!r}: expected a positive integer") from None
        source = env
    value = int(value)
    if value < 1:
        raise ValueError(f"{source} must be >= 1, got {value}")
    return value


def resolve_limits(max_line_bytes: Optional[int] = None,
                   max_labels_per_doc: Optional[int] = None) -> Tuple[int, int]:
    """(max_line_bytes, max_labels_per_doc) after the environment and default fallbacks."""
    return (_resolve("max_line_bytes", max_line_bytes, LINE_ENV, DEFAULT_MAX_LINE_BYTES),
            _resolve("max_labels_per_doc", max_labels_per_doc, LABELS_ENV, DEFAULT_MAX_LABELS_PER_DOC))


def line_too_long(limit: int) -> str:
    """The same words as the native reader's message."""
    return (f"the line is longer than {limit} bytes (max_line_bytes); raise the limit with --max-line-bytes "
            f"or {LINE_ENV} if the file is genuine")


def too_many_labels(limit: int) -> str:
    return (f"more than {limit} labels on this line (max_labels_per_doc); raise the limit with "
            f"--max-labels-per-doc or {LABELS_ENV} if the file is genuine")
