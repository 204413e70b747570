"""xmc: extreme multi-label classification.

Label trees, a linear probabilistic label tree (PLT), beam search and metrics
on a C++ core (``xmc._core``); deep label-wise attention models on PyTorch.
"""
__version__ = "0.1.0"
