"""The linear model: a probabilistic label tree of per-node liblinear-style classifiers trained in C++
(:class:`PLTLinear` on feature matrices), and :class:`Pipeline`, which adds the label vocabulary and the
TF-IDF featurizer of raw text. Torch-free."""
from xmc.linear.params import LinearParams, PLTParams
from xmc.linear.pipeline import Pipeline
from xmc.linear.plt import PLTLinear

__all__ = ["LinearParams", "PLTLinear", "PLTParams", "Pipeline"]
