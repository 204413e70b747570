"""xmc: extreme multi-label classification.

Label trees, a linear probabilistic label tree (PLT), beam search and metrics
on a C++ core (``xmc._core``); deep label-wise attention models on PyTorch.
"""
import importlib.util as _util
from pathlib import Path as _Path

__version__ = "0.1.0"

if _util.find_spec("xmc._core") is None:
    # The usual cause: Python was started in the repository root after `pip install .`, so this unbuilt
    # source folder shadows the installed package; every module that needs the core would fail with a
    # bare "cannot import name '_core'".
    _source_tree = (_Path(__file__).resolve().parent.parent / "setup.py").is_file()
    raise ImportError("xmc's C++ core (xmc._core) is not built in " + str(_Path(__file__).resolve().parent)
                      + ("; this is the source tree, which shadows an installed xmc: run Python from another "
                         "folder, or build it in place with `pip install -e .`" if _source_tree else
                         "; reinstall xmc (pip install .)"))
