"""Temporary files and folders beside a target, renamed onto it once complete (a crash leaves the old one or
the new one), created with the permissions the user's umask gives any new file: ``tempfile`` makes them
0600 / 0700, which would leave models and predictions unreadable to the people they are shared with."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Tuple


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_file_beside(target: Path, tag: str = "") -> Tuple[int, str]:
    """(open descriptor, path) of a new empty file in ``target``'s folder, mode 0666 minus the umask."""
    fd, tmp = tempfile.mkstemp(dir=Path(target).parent, prefix=f".{Path(target).name}.{tag}", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())
    return fd, tmp


def temp_dir_beside(target: Path, suffix: str = ".") -> Path:
    """A new empty folder in ``target``'s folder, mode 0777 minus the umask."""
    tmp = Path(tempfile.mkdtemp(dir=Path(target).parent, prefix=f".{Path(target).name}{suffix}"))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp
