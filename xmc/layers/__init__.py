"""Neural layers of the deep models (torch): token encoders, output heads, losses, and weights <-> arrays.

- :mod:`xmc.layers.encoders`: BiLSTM and feed-forward token encoders.
- :mod:`xmc.layers.heads`: the label-wise attention scorer, LightAttention's cluster generator.
- :mod:`xmc.layers.losses`: masked binary cross-entropy.
- :mod:`xmc.layers.state`: a network's weights as numpy arrays and back.

Kernels (label-wise attention, GCN propagation) live in :mod:`xmc.ops`; the layers call them.
"""
