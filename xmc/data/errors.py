"""Errors of the data readers. No imports beyond the standard library: the
native module imports this file to raise DataFormatError from C++."""
from __future__ import annotations

from typing import Optional


class DataFormatError(ValueError):
    """An input file does not match its format.

    The message names the file, the 1-based line (when the problem is on one
    line), what was expected and what was found. ``file`` and ``line`` hold the
    same facts for programs; ``line`` is 0 when the problem is the whole file.
    """

    def __init__(self, message: str, file: Optional[str] = None, line: Optional[int] = None) -> None:
        super().__init__(message)
        self.file = file
        self.line = line

    @classmethod
    def at(cls, file: object, line: int, message: str) -> "DataFormatError":
        """An error located like the native reader's: ``file:line: message``."""
        where = f"{file}:{line}" if line > 0 else f"{file}"
        return cls(f"{where}: {message}", str(file), line)


class UnknownLabelError(ValueError):
    """A label string is not in a LabelVocab."""


class DataWarning(UserWarning):
    """Input xmc read but partly skipped (blank lines, repeated labels, empty
    documents left out of training, labels unseen in training). Each warning
    names the file or corpus, counts what was skipped and says where the first
    one was, so a user can tell a harmless quirk from a broken file."""


def warn_skipped(where: str, count: int, what: str, first: str, why: str) -> None:
    """One warning for every skip of one kind in one input: ``count`` ``what``
    (first ``first``); ``why`` says what xmc did instead."""
    import warnings

    if count:
        warnings.warn(f"{where}: {what}: {count:,} (first {first}); {why}", DataWarning, stacklevel=3)
