"""Gzip-compressed inputs, read in place: a file that starts with gzip's magic bytes is decompressed as it is
read, whatever its name, and a damaged or truncated stream is a :class:`DataFormatError` naming the file (and
the line reached, for line readers)."""
from __future__ import annotations

import gzip
import os
import zlib
from typing import BinaryIO, Union

from xmc.data.errors import DataFormatError

PathLike = Union[str, "os.PathLike[str]"]
GZIP_MAGIC = b"\x1f\x8b"
# What gzip raises on a damaged stream: a bad header or CRC (BadGzipFile), bad deflate data (zlib.error), a
# stream cut short (EOFError).
DAMAGED_GZIP = (gzip.BadGzipFile, zlib.error, EOFError)


def is_gzip(path: PathLike) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def check_file(path: PathLike, expected: str = "a text file") -> str:
    """``path`` as a string once it names a file: a missing one or a folder is a clear error."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"{p}: no such file")
    if os.path.isdir(p):
        raise IsADirectoryError(f"{p}: is a directory, expected {expected}")
    return p


def open_binary(path: PathLike) -> BinaryIO:
    """The file's bytes, decompressed when it is gzip; missing files and folders are clear errors."""
    p = check_file(path)
    return gzip.open(p, "rb") if is_gzip(p) else open(p, "rb")


def damaged(error: BaseException) -> str:
    """The message of a damaged gzip stream."""
    return (f"the gzip stream is damaged or truncated ({type(error).__name__}: {error}); the file must be "
            f"compressed again or fetched again")


def read_all(path: PathLike) -> bytes:
    """The whole decompressed content of a gzip file."""
    p = os.fspath(path)
    try:
        with gzip.open(p, "rb") as f:
            return f.read()
    except DAMAGED_GZIP as e:
        raise DataFormatError.at(p, 0, damaged(e)) from None
