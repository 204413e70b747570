"""xmc.models: the raw-text deep models, one file each, with their params.

- :mod:`xmc.models.attentionxml`: label-wise attention trained level by level over the label tree.
- :mod:`xmc.models.light_attention`: AttentionXML's scorer with a cluster generator's dynamic hard negatives.
- :mod:`xmc.models.ldgn`: label attention and a dual (static and dynamic) label graph network.
- :mod:`xmc.models.seq2seq_mdc`: labels generated as a sequence, multi-level dilated convolution, hybrid attention.
- :mod:`xmc.models.lwpt`: label-wise pre-training of two label-wise encoders, then fine-tuning.
- :mod:`xmc.models.laco`: document-label joint embedding, cross attention, PLCP / CLCP auxiliary tasks.
- :mod:`xmc.models.ensemble`: several of them on label trees with different seeds, scores averaged.

:mod:`xmc.models.params` holds the params they share, :mod:`xmc.models.base` the model they all build on.
Model kinds are listed once, in :mod:`xmc.registry`; load any model directory with
:func:`xmc.registry.load_model`. Importing this package imports none of the models (they need torch).
"""
